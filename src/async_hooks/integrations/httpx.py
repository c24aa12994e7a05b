"""httpx: outgoing requests carry the declared stores and the request id.

Built on httpx's request event hooks, which run in the caller's thread (sync
client) or task (async client), so they see the caller's context::

    client = instrument_httpx(httpx.AsyncClient())

or, when building the client yourself::

    httpx.Client(event_hooks={"request": [add_context_headers]})
    httpx.AsyncClient(event_hooks={"request": [add_context_headers_async]})

See :mod:`async_hooks.integrations.outgoing` for the headers themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._extras import missing_extra

try:
    import httpx
except ImportError as error:
    raise missing_extra(__name__, "httpx", extra="httpx") from error

from .._validation import describe
from ..errors import InvalidArgTypeError
from .outgoing import add_outgoing_headers
from .request_id import DEFAULT_HEADER, check_header_name

__all__ = ["add_context_headers", "add_context_headers_async", "instrument_httpx"]

_ClientT = TypeVar("_ClientT", httpx.Client, httpx.AsyncClient)


def add_context_headers(request: httpx.Request) -> None:
    """Request event hook of a sync ``httpx.Client``."""
    add_outgoing_headers(request.headers)


async def add_context_headers_async(request: httpx.Request) -> None:
    """Request event hook of an ``httpx.AsyncClient`` (whose hooks must be coroutines)."""
    add_outgoing_headers(request.headers)


def instrument_httpx(client: _ClientT, *, request_id_header: str = DEFAULT_HEADER) -> _ClientT:
    """Add the context hook to ``client``'s request hooks (after any already there).

    Returns the client, so that it can wrap the constructor. Instrumenting a
    client twice adds nothing the second time.
    """
    check_header_name(request_id_header)
    if isinstance(client, httpx.AsyncClient):
        hook: Callable[[httpx.Request], object] = _async_hook(request_id_header)
    elif isinstance(client, httpx.Client):
        hook = _sync_hook(request_id_header)
    else:
        raise InvalidArgTypeError(
            'The "client" argument must be an httpx.Client or httpx.AsyncClient. '
            f"Received {describe(client)}"
        )
    hooks = client.event_hooks
    if hook not in hooks["request"]:
        hooks["request"].append(hook)
        # Assigned back: the setter is httpx's public way to change hooks.
        client.event_hooks = hooks
    return client


@functools.cache
def _sync_hook(request_id_header: str) -> Callable[[httpx.Request], None]:
    if request_id_header == DEFAULT_HEADER:
        return add_context_headers

    def add_context_headers_named(request: httpx.Request) -> None:
        add_outgoing_headers(request.headers, request_id_header=request_id_header)

    return add_context_headers_named


@functools.cache
def _async_hook(request_id_header: str) -> Callable[[httpx.Request], Awaitable[None]]:
    if request_id_header == DEFAULT_HEADER:
        return add_context_headers_async

    async def add_context_headers_named(request: httpx.Request) -> None:
        add_outgoing_headers(request.headers, request_id_header=request_id_header)

    return add_context_headers_named
