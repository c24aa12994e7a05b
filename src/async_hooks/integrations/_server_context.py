"""What every server middleware does for a request, whatever the framework.

A middleware extracts two header values (its request-id header and the
``baggage`` header) and calls ``request_context``: inside the ``with`` block
the ``request_id`` store holds the request's id and the stores that arrived as
baggage are entered (the baggage is the carrier of ``_carrier.py``). Values
from the network are never trusted: an invalid request id is replaced by a
fresh one and malformed baggage members are left out, each with a warning in the
``async_hooks.integrations`` log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass
from typing import Any

from .. import _storage
from .._policy import Crossing
from .._validation import require_callable
from ..errors import InvalidArgValueError
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
# How many of a baggage header's problems one log line names.
_PROBLEMS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class RequestContextOptions:
    """The settings shared by the ASGI, WSGI and aiohttp middlewares.

    ``header_name``: the request-id header, read on requests and set on
    responses. ``trust_incoming``: use a valid incoming id (False: always
    generate one, for services exposed to the public). ``generate_id``: makes
    a fresh id. ``validator``: says whether an incoming id may be used
    (default ``is_valid_request_id``). ``transformer``: turns an accepted
    incoming id into the id used (default: none). ``read_baggage``: enter the
    stores carried by a W3C ``baggage`` header.

    Whatever ``validator`` and ``transformer`` accept or return, the id used
    is always 1 to 1024 visible ASCII characters, safe in a header and a log
    line; an incoming id that is not, or that makes either of them raise, is
    refused like an invalid one: a request is never failed by its id.

    The options are also the servers' carrier ``Receiver``: what a request
    brings that is not used goes to the ``async_hooks.integrations`` log.
    """

    header_name: str = DEFAULT_HEADER
    trust_incoming: bool = True
    generate_id: Callable[[], str] = new_request_id
    read_baggage: bool = True
    validator: Callable[[str], bool] = is_valid_request_id
    transformer: Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        check_header_name(self.header_name, "header_name")
        require_callable(self.generate_id, "generate_id")
        require_callable(self.validator, "validator")
        if self.transformer is not None:
            require_callable(self.transformer, "transformer")

    def accept_id(self, value: object) -> str | None:
        """The id to use for the incoming ``value``, or None to refuse it."""
        if not isinstance(value, str):
            return None
        validator, transformer = self.validator, self.transformer
        if validator is is_valid_request_id and transformer is None:
            # The default, on every request: one regular expression.
            return value if is_valid_request_id(value) else None
        if not _calls(validator, value, "validator"):
            return None
        chosen = value if transformer is None else _calls(transformer, value, "transformer")
        if not isinstance(chosen, str) or _SAFE_ID.fullmatch(chosen) is None:
            return None
        return chosen

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

    def rejected_id(self, value: object, from_header: bool, replacement: str | None) -> None:
        what = (
            f"{self.header_name} header" if from_header else f"{request_id.name!r} baggage member"
        )
        text = str(value)
        logger.warning(
            "Rejected an invalid %s (%d characters, starting %r): replaced by request id %s",
            what,
            len(text),
            text[:_QUOTED_PREFIX],
            replacement,
        )


def _calls(fn: Callable[[str], Any], value: str, argument: str) -> Any:
    """``fn(value)``, or None when it raises: the caller's code, on input from the network."""
    try:
        return fn(value)
    except Exception as error:
        # Reported, and the request served with a fresh id rather than failed.
        logger.warning(
            "The %s raised %r on an incoming request id; the id is refused", argument, error
        )
        return None


def cgi_header_key(header_name: str) -> str:
    """The CGI spelling of a request header, as WSGI environ and Django's ``META`` hold it.

    ``X-Request-ID`` becomes ``HTTP_X_REQUEST_ID``.
    """
    return "HTTP_" + header_name.upper().replace("-", "_")


def first_of_list(value: str) -> str:
    """The first element of a header that the server may have joined from several.

    WSGI servers and Django (under ASGI too) keep one value per header name,
    so repeated headers arrive joined as ``"first, second"`` (RFC 9110 list
    syntax). The first one counts, as on ASGI and aiohttp; a valid id never
    contains a comma, so nothing valid is cut.
    """
    first, comma, _ = value.partition(",")
    return first.strip(" \t") if comma else value


# What an id may be once validator and transformer have had their say.
_SAFE_ID = re.compile(r"[\x21-\x7e]{1,1024}")


@contextmanager
def request_context(
    incoming_id: str | None, baggage: str | None, options: RequestContextOptions
) -> Iterator[str]:
    """Enter the request's stores for the block; ``as`` gives the request id.

    A refused incoming id is reported inside the block's context, so that a
    log filter shows the id that replaced it.
    """
    if baggage is None or not options.read_baggage:
        chosen_id, rejection = choose_request_id(incoming_id, options)
        with request_id.with_scope(chosen_id):
            if rejection is not None:
                options.rejected_id(*rejection, chosen_id)
            yield chosen_id
        return
    with enter_carrier(_baggage_members(baggage), incoming_id, options) as chosen_id:
        yield chosen_id


def enter_request_id(
    incoming_id: str | None, options: RequestContextOptions
) -> tuple[str, Token[str | None]]:
    """Enter the request's id; returns it, and the token that ends it (``reset_request_id``).

    ``request_context`` for a request without baggage, without the context
    manager's generator, which costs more than the rest of this: for the
    hot path of a middleware. A caller that runs each request in a context
    of its own (a fresh copy) may drop the token, as nothing outlives that
    context. A refused incoming id is reported once the replacement is
    entered, so that the report is logged in the request's context.
    """
    chosen_id, rejection = choose_request_id(incoming_id, options)
    token = _storage._set(request_id, chosen_id)
    if rejection is not None:
        options.rejected_id(*rejection, chosen_id)
    return chosen_id, token


def reset_request_id(token: Token[str | None]) -> None:
    """End what ``enter_request_id`` entered."""
    _storage._reset(request_id, token)


def _baggage_members(baggage: str) -> dict[str, str]:
    # A malformed member is left out and the others kept, as the W3C
    # specification asks; the request never fails on its baggage. The members
    # are checked one by one again by enter_carrier, against the stores.
    problems: list[str] = []
    members = decode_baggage(baggage, on_skipped=problems.append)
    if problems:
        # One line per header, however many members were bad: a hostile
        # client cannot make one request write a hundred log lines.
        shown = "; ".join(problems[:_PROBLEMS_SHOWN])
        more = len(problems) - _PROBLEMS_SHOWN
        logger.warning(
            "Ignored part of a baggage header (%d members kept): %s%s",
            len(members),
            shown,
            f"; and {more} more" if more > 0 else "",
        )
    return members
