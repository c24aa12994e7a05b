"""The carrier of every remote crossing: the declared stores, with the request id beside them.

HTTP clients (``outgoing.py``) and the task-queue senders (Celery, RQ,
Dramatiq) take it from :func:`outgoing_carrier`; the server middlewares
(``_server_context.py``) and the task-queue workers (``_worker_carrier.py``)
enter an arrived one with :func:`enter_carrier`::

    with enter_carrier(members, header_id, receiver) as chosen_id:
        ...

The request id travels apart from the other stores, in a header of its own,
which proxies and log pipelines already know. On arrival it is checked before
it is entered, and a request id among the stores (sent by someone other than
this package) is only the fallback for a missing header. What a receiver
refuses it reports its own way: servers log, workers warn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol, TypeVar

from .._policy import Crossing, enter_stores, export_stores, load_carrier
from .request_id import is_valid_request_id, request_id

Encoded = TypeVar("Encoded")
# What a receiver enters when no usable request id arrived: servers make a
# fresh one (str), a Celery worker makes none up (None).
FreshId = TypeVar("FreshId", bound=str | None)
FreshId_co = TypeVar("FreshId_co", bound=str | None, covariant=True)


def outgoing_carrier(
    stores_key: str, request_id_key: str, encode: Callable[[dict[str, str]], Encoded]
) -> dict[str, Encoded | str]:
    """The carrier of a request or task sent now: ``{stores_key: ..., request_id_key: id}``.

    Under ``stores_key``, ``encode({name: text})`` of the stores that cross
    ``Crossing.REMOTE`` and have a value here, the request id left out; under
    ``request_id_key``, the current request id. A key with nothing to carry
    is absent, so the carrier is empty when there is nothing to send. Raises
    ``StoreSerializationError`` when a store's value cannot be serialized
    (and its policy says "raise").
    """
    carrier: dict[str, Encoded | str] = {}
    stores = export_stores(Crossing.REMOTE)
    # The request id has a header of its own; carrying it twice would only
    # give two places to disagree.
    stores.pop(request_id.name, None)
    if stores:
        carrier[stores_key] = encode(stores)
    current_id = request_id.get_store()
    if current_id is not None:
        carrier[request_id_key] = current_id
    return carrier


class Receiver(Protocol[FreshId_co]):
    """How one kind of receiver takes an arrived carrier, and reports what it refuses."""

    @property
    def trust_incoming(self) -> bool:
        """False: an incoming request id is never used."""
        ...

    def accept_id(self, value: object) -> str | None:
        """The request id to use for an incoming ``value``, or None to refuse it."""
        ...

    def fresh_id(self) -> FreshId_co:
        """The request id to enter when none usable arrived (None: enter none)."""
        ...

    def skipped(self, name: str, crossing: Crossing, error: Exception | None) -> None:
        """Report a store member left out (the ``on_skipped`` of ``_policy.load_carrier``)."""
        ...

    def rejected_id(self, value: object, from_header: bool, replacement: str | None) -> None:
        """Report an invalid incoming request id, from inside the context of ``replacement``.

        ``value`` came in the request-id header (``from_header``) or among
        the stores; ``replacement`` is the id entered instead (None: none).
        """
        ...


#: What choose_request_id refused, to report once the replacement is entered:
#: ``(value, from_header)``, or None when nothing was refused.
Rejection = tuple[object, bool] | None


def choose_request_id(
    header_id: object, receiver: Receiver[FreshId], stores_id: object = None
) -> tuple[str | FreshId, Rejection]:
    """The request id to enter, and what was refused on the way (to report it later).

    The incoming id when ``receiver`` trusts incoming ids and accepts it,
    else a fresh one. The header's id wins; the id from among the stores
    counts only when no header came. A refused id is never used: the caller
    reports it with ``receiver.rejected_id`` once the replacement is entered,
    so that the report is logged in the request's context.
    """
    if receiver.trust_incoming:
        incoming = stores_id if header_id is None else header_id
        if incoming is not None:
            accepted = receiver.accept_id(incoming)
            if accepted is not None:
                return accepted, None
            return receiver.fresh_id(), (incoming, header_id is not None)
    return receiver.fresh_id(), None


def accept_valid_id(value: object) -> str | None:
    """``value`` when it is a valid request id (``is_valid_request_id``), else None."""
    return value if isinstance(value, str) and is_valid_request_id(value) else None


@contextmanager
def enter_carrier(
    members: Mapping[str, object], header_id: object, receiver: Receiver[FreshId]
) -> Iterator[str | FreshId]:
    """Enter an arrived carrier for the block; ``as`` gives the request id entered.

    ``members`` are the carried stores as ``{name: text}`` and ``header_id``
    the id of the carrier's request-id header (None when it has none). Only
    members named after a live store declared to cross ``Crossing.REMOTE``
    whose text loads are entered; the request id is chosen by
    :func:`choose_request_id` and entered last, and a refused one reported
    inside. Nothing entered outlives the block, also when it raises.
    """
    values = load_carrier(members, Crossing.REMOTE, receiver.skipped)
    # Never entered as it came: a request id among the stores is only the
    # fallback for the header's, with the same checks.
    chosen_id, rejection = choose_request_id(header_id, receiver, values.pop(request_id, None))
    with enter_stores(values):
        if chosen_id is None:
            if rejection is not None:
                receiver.rejected_id(*rejection, None)
            yield chosen_id
        else:
            with request_id.with_scope(chosen_id):
                if rejection is not None:
                    receiver.rejected_id(*rejection, chosen_id)
                yield chosen_id
