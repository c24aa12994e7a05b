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
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError, InvalidArgValueError
from .request_id import DEFAULT_HEADER, is_valid_request_id, new_request_id, request_id

__all__ = ["RequestContextOptions", "logger", "request_context"]

logger = logging.getLogger("async_hooks.integrations")

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
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
        if not isinstance(self.header_name, str):
            raise InvalidArgTypeError(
                f'The "header_name" argument must be of type str. '
                f"Received {describe(self.header_name)}"
            )
        if _HEADER_NAME.fullmatch(self.header_name) is None:
            raise InvalidArgValueError(
                f"The header name {self.header_name!r} is not a valid HTTP header name"
            )
        require_callable(self.generate_id, "generate_id")


def choose_request_id(incoming: str | None, options: RequestContextOptions) -> str:
    """The incoming id when it may be trusted and is valid, else a fresh one."""
    if incoming is not None and options.trust_incoming:
        if is_valid_request_id(incoming):
            return incoming
        logger.warning(
            "Rejected an invalid %s header (%d characters, starting %r): "
            "a fresh request id replaces it",
            options.header_name,
            len(incoming),
            incoming[:_QUOTED_PREFIX],
        )
    generated = options.generate_id()
    if not is_valid_request_id(generated):
        raise InvalidArgValueError(
            f"generate_id returned {generated!r}, which is not a valid request id "
            "(1-128 characters of [A-Za-z0-9._-])"
        )
    return generated


@contextmanager
def request_context(
    incoming_id: str | None, baggage: str | None, options: RequestContextOptions
) -> Iterator[str]:
    """Enter the request's stores for the block; yields the request id."""
    chosen_id = choose_request_id(incoming_id, options)
    with request_id.with_scope(chosen_id):
        yield chosen_id
