"""The carrier of every remote crossing: the declared stores, with the request id beside them.

HTTP clients (``outgoing.py``) and Celery's sender take it from
:func:`outgoing_carrier`; the server middlewares (``_server_context.py``) and
Celery's worker enter an arrived one with :func:`enter_carrier`::

    with enter_carrier(members, header_id, receiver) as chosen_id:
        ...

The request id travels apart from the other stores, in a header of its own,
which proxies and log pipelines already know. On arrival it is checked before
it is entered, and a request id among the stores (sent by someone other than
this package) is only the fallback for a missing header. What a receiver
refuses it reports its own way: servers log, Celery warns.
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

    def fresh_id(self) -> FreshId_co:
        """The request id to enter when none usable arrived (None: enter none)."""
        ...

    def skipped(self, name: str, crossing: Crossing, error: Exception | None) -> None:
        """Report a store member left out (the ``on_skipped`` of ``_policy.load_carrier``)."""
        ...

    def rejected_id(self, value: object, from_header: bool) -> None:
        """Report an invalid incoming request id: the header's, or the one among the stores."""
        ...


def choose_request_id(
    header_id: object, receiver: Receiver[FreshId], stores_id: object = None
) -> str | FreshId:
    """The incoming request id when ``receiver`` trusts it and it is valid, else a fresh one.

    The header's id wins; the id from among the stores counts only when no
    header came. An id that is not valid is reported and never used.
    """
    if receiver.trust_incoming:
        incoming = stores_id if header_id is None else header_id
        if incoming is not None:
            if isinstance(incoming, str) and is_valid_request_id(incoming):
                return incoming
            receiver.rejected_id(incoming, header_id is not None)
    return receiver.fresh_id()


@contextmanager
def enter_carrier(
    members: Mapping[str, object], header_id: object, receiver: Receiver[FreshId]
) -> Iterator[str | FreshId]:
    """Enter an arrived carrier for the block; ``as`` gives the request id entered.

    ``members`` are the carried stores as ``{name: text}`` and ``header_id``
    the id of the carrier's request-id header (None when it has none). Only
    members named after a live store declared to cross ``Crossing.REMOTE``
    whose text loads are entered; the request id is chosen by
    :func:`choose_request_id` and entered last. Nothing entered outlives the
    block, also when it raises.
    """
    values = load_carrier(members, Crossing.REMOTE, receiver.skipped)
    # Never entered as it came: a request id among the stores is only the
    # fallback for the header's, with the same checks.
    chosen_id = choose_request_id(header_id, receiver, values.pop(request_id, None))
    with enter_stores(values):
        if chosen_id is None:
            yield chosen_id
        else:
            with request_id.with_scope(chosen_id):
                yield chosen_id
