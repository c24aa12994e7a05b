"""What every server middleware does for a request, whatever the framework.

A middleware extracts two header values (its request-id header and the
``baggage`` header) and calls ``request_context``: inside the ``with`` block
the ``request_id`` store holds the request's id and the stores that arrived as
baggage are entered (the baggage is the carrier of ``_carrier.py``). Values
from the network are never trusted: an invalid request id is replaced by a
fresh one and malformed baggage is ignored, each with a warning in the
``async_hooks.integrations`` log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

from .._policy import Crossing
from .._validation import require_callable
from ..errors import InvalidArgValueError, InvalidBaggageError
from ._carrier import choose_request_id, enter_carrier
from .baggage import decode_baggage
from .request_id import (
    DEFAULT_HEADER,
    check_header_name,
    is_valid_request_id,
    new_request_id,
    request_id,
)

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

    The options are also the servers' carrier ``Receiver``: what a request
    brings that is not used goes to the ``async_hooks.integrations`` log.
    """

    header_name: str = DEFAULT_HEADER
    trust_incoming: bool = True
    generate_id: Callable[[], str] = new_request_id
    read_baggage: bool = True

    def __post_init__(self) -> None:
        check_header_name(self.header_name, "header_name")
        require_callable(self.generate_id, "generate_id")

    def fresh_id(self) -> str:
        """A new id from ``generate_id``; a custom generator's id must itself be valid."""
        generate_id = self.generate_id
        generated = generate_id()
        # Our own generator needs no check; a custom one is checked every time.
        if generate_id is not new_request_id and not is_valid_request_id(generated):
            raise InvalidArgValueError(
                f"generate_id returned {generated!r}, which is not a valid request id "
                "(1-128 characters of [A-Za-z0-9._-])"
            )
        return generated

    def skipped(self, name: str, crossing: Crossing, error: Exception | None) -> None:
        # Members of other systems (tracing vendors, other libraries) are
        # normal in baggage: only a value of ours that does not load is news.
        if error is not None:
            logger.warning(
                "Ignored the baggage member %r: its value does not load (%s)", name, error
            )

    def rejected_id(self, value: object, from_header: bool) -> None:
        what = (
            f"{self.header_name} header" if from_header else f"{request_id.name!r} baggage member"
        )
        text = str(value)
        logger.warning(
            "Rejected an invalid %s (%d characters, starting %r): a fresh request id replaces it",
            what,
            len(text),
            text[:_QUOTED_PREFIX],
        )


def request_context(
    incoming_id: str | None, baggage: str | None, options: RequestContextOptions
) -> AbstractContextManager[str]:
    """Enter the request's stores for the block; ``as`` gives the request id."""
    if baggage is None or not options.read_baggage:
        # The common case, on every request: one store scope and nothing else.
        scope = request_id.with_scope(choose_request_id(incoming_id, options))
        return cast("AbstractContextManager[str]", scope)
    return enter_carrier(_baggage_members(baggage), incoming_id, options)


def _baggage_members(baggage: str) -> dict[str, str]:
    # Malformed baggage is dropped as a whole, so that a request never fails
    # on its baggage; the members are checked one by one by enter_carrier.
    try:
        return decode_baggage(baggage)
    except InvalidBaggageError as error:
        logger.warning("Ignored an invalid baggage header: %s", error)
        return {}
