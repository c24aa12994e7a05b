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
from .outgoing import OutgoingPolicy, _check_policy, add_outgoing_headers
from .request_id import DEFAULT_HEADER, check_header_name

__all__ = ["add_context_headers", "add_context_headers_async", "instrument_httpx"]

_ClientT = TypeVar("_ClientT", httpx.Client, httpx.AsyncClient)

# Set on every hook of ours, so that instrumenting a client again replaces
# its hook rather than adding a second one with other settings.
_OURS = "_async_hooks_context_hook"


def add_context_headers(request: httpx.Request) -> None:
    """Request event hook of a sync ``httpx.Client`` (the global outgoing policy)."""
    add_outgoing_headers(request.headers, url=str(request.url))


async def add_context_headers_async(request: httpx.Request) -> None:
    """Request event hook of an ``httpx.AsyncClient`` (whose hooks must be coroutines)."""
    add_outgoing_headers(request.headers, url=str(request.url))


setattr(add_context_headers, _OURS, True)
setattr(add_context_headers_async, _OURS, True)


def instrument_httpx(
    client: _ClientT,
    *,
    request_id_header: str = DEFAULT_HEADER,
    policy: OutgoingPolicy | None = None,
) -> _ClientT:
    """Add the context hook to ``client``'s request hooks (after any already there).

    ``policy`` decides which hosts get the context (default: the global
    policy of ``outgoing.set_outgoing_policy``, read at each request). httpx
    calls the hook for every request it sends, redirects included, so each
    redirect's host is checked. Returns the client, so that it can wrap the
    constructor. Instrumenting a client again replaces its hook.
    """
    check_header_name(request_id_header)
    _check_policy(policy)
    if isinstance(client, httpx.AsyncClient):
        hook: Callable[[httpx.Request], object] = _async_hook(request_id_header, policy)
    elif isinstance(client, httpx.Client):
        hook = _sync_hook(request_id_header, policy)
    else:
        raise InvalidArgTypeError(
            'The "client" argument must be an httpx.Client or httpx.AsyncClient. '
            f"Received {describe(client)}"
        )
    hooks = client.event_hooks
    hooks["request"] = [h for h in hooks["request"] if not getattr(h, _OURS, False)] + [hook]
    # Assigned back: the setter is httpx's public way to change hooks.
    client.event_hooks = hooks
    return client


@functools.cache
def _sync_hook(
    request_id_header: str, policy: OutgoingPolicy | None
) -> Callable[[httpx.Request], None]:
    if request_id_header == DEFAULT_HEADER and policy is None:
        return add_context_headers

    def add_context_headers_configured(request: httpx.Request) -> None:
        add_outgoing_headers(
            request.headers,
            url=str(request.url),
            request_id_header=request_id_header,
            policy=policy,
        )

    setattr(add_context_headers_configured, _OURS, True)
    return add_context_headers_configured


@functools.cache
def _async_hook(
    request_id_header: str, policy: OutgoingPolicy | None
) -> Callable[[httpx.Request], Awaitable[None]]:
    if request_id_header == DEFAULT_HEADER and policy is None:
        return add_context_headers_async
    add_headers = _sync_hook(request_id_header, policy)

    async def add_context_headers_configured(request: httpx.Request) -> None:
        add_headers(request)

    setattr(add_context_headers_configured, _OURS, True)
    return add_context_headers_configured
