"""What every server middleware does for a request, whatever the framework.

A middleware extracts two header values (its request-id header and the
``baggage`` header) and calls ``request_context``: inside the ``with`` block
the ``request_id`` store holds the request's id and the stores that arrived as
baggage are entered. Values from the network are never trusted: an invalid
request id is replaced by a fresh one and malformed baggage is ignored, each
with a warning in the ``async_hooks.integrations`` log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import cast

from .._policy import Crossing, import_stores, live_stores
from .._validation import require_callable
from ..errors import InvalidArgValueError, InvalidBaggageError
from .baggage import decode_baggage
from .request_id import (
    DEFAULT_HEADER,
    check_header_name,
    is_valid_request_id,
    new_request_id,
    request_id,
)

__all__ = ["RequestContextOptions", "logger", "request_context"]

logger = logging.getLogger("async_hooks.integrations")

# How much of a rejected value is quoted in the log: enough to recognise it,
# too little to flood the log; repr() escapes anything that could forge lines.
_QUOTED_PREFIX = 40


@dataclass(frozen=True, slots=True)
class RequestContextOptions:
    """The settings shared by the ASGI, WSGI and aiohttp middlewares.

    ``header_name``: the request-id header, read on requests and set on
    responses. ``trust_incoming``: use a valid incoming id (False: always
    generate one, for services exposed to the public). ``generate_id``: makes
    a fresh id. ``read_baggage``: enter the stores carried by a W3C
    ``baggage`` header.
    """

    header_name: str = DEFAULT_HEADER
    trust_incoming: bool = True
    generate_id: Callable[[], str] = new_request_id
    read_baggage: bool = True

    def __post_init__(self) -> None:
        check_header_name(self.header_name, "header_name")
        require_callable(self.generate_id, "generate_id")


def choose_request_id(
    incoming: str | None, options: RequestContextOptions, *, from_baggage: object = None
) -> str:
    """The incoming id when it may be trusted and is valid, else a fresh one.

    The request-id header wins; an id that came only as baggage is the
    fallback, with the same checks.
    """
    if options.trust_incoming:
        if incoming is not None:
            if is_valid_request_id(incoming):
                return incoming
            _reject(f"{options.header_name} header", incoming)
        elif from_baggage is not None:
            if isinstance(from_baggage, str) and is_valid_request_id(from_baggage):
                return from_baggage
            _reject(f"{request_id.name!r} baggage member", str(from_baggage))
    generate_id = options.generate_id
    generated = generate_id()
    # Our own generator needs no check; a custom one is checked every time.
    if generate_id is not new_request_id and not is_valid_request_id(generated):
        raise InvalidArgValueError(
            f"generate_id returned {generated!r}, which is not a valid request id "
            "(1-128 characters of [A-Za-z0-9._-])"
        )
    return generated


def _reject(what: str, value: str) -> None:
    logger.warning(
        "Rejected an invalid %s (%d characters, starting %r): a fresh request id replaces it",
        what,
        len(value),
        value[:_QUOTED_PREFIX],
    )


def request_context(
    incoming_id: str | None, baggage: str | None, options: RequestContextOptions
) -> AbstractContextManager[str]:
    """Enter the request's stores for the block; ``as`` gives the request id."""
    if baggage is None or not options.read_baggage:
        # The common case, on every request: one store scope and nothing else.
        scope = request_id.with_scope(choose_request_id(incoming_id, options))
        return cast("AbstractContextManager[str]", scope)
    return _request_context_with_baggage(incoming_id, baggage, options)


@contextmanager
def _request_context_with_baggage(
    incoming_id: str | None, baggage: str, options: RequestContextOptions
) -> Iterator[str]:
    carrier, id_from_baggage = incoming_stores(baggage)
    chosen_id = choose_request_id(incoming_id, options, from_baggage=id_from_baggage)
    # The request id is entered last, inside: it is never taken unchecked
    # from the baggage.
    with import_stores(carrier, Crossing.REMOTE), request_id.with_scope(chosen_id):
        yield chosen_id


def incoming_stores(baggage: str) -> tuple[dict[str, str], object]:
    """The baggage members to enter, and the request id the baggage carried.

    Only members named after a live store declared to cross REMOTE are kept,
    and only when their text loads: anything else is dropped here, so that a
    request never fails on its baggage. Members of other systems (tracing
    vendors, other libraries) are normal in baggage and are ignored quietly;
    malformed baggage and values that do not load are logged as warnings.
    """
    try:
        members = decode_baggage(baggage)
    except InvalidBaggageError as error:
        logger.warning("Ignored an invalid baggage header: %s", error)
        return {}, None
    carrier: dict[str, str] = {}
    id_from_baggage: object = None
    for name, text in members.items():
        store = live_stores.declared(name)
        if store is None or Crossing.REMOTE not in store.crosses:
            continue
        serializer = store.serializer
        assert serializer is not None  # guaranteed for stores that cross REMOTE
        try:
            value = serializer.loads(text)
        except Exception as error:
            logger.warning(
                "Ignored the baggage member %r: its value does not load (%s)", name, error
            )
            continue
        if store is request_id:
            id_from_baggage = value
        else:
            carrier[name] = text
    return carrier, id_from_baggage
