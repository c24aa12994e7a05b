"""aiohttp: request context for its web server, and context headers on its client's requests.

Server::

    app = web.Application()
    setup_request_context(app)

adds an outermost middleware that runs each request's handler (and every
middleware after it) in the request's context, and a response-prepare
signal that puts the id on every response, streamed ones included (their
headers leave in ``prepare()``, inside the handler) and the error responses
that aiohttp itself builds after the middlewares have returned.

Client, built on aiohttp's client tracing: ``on_request_start`` runs in the
caller's task, before the request is built, with the headers it will be
built from (kept for every redirect of that call)::

    aiohttp.ClientSession(trace_configs=[context_trace_config()])

See :mod:`async_hooks.integrations.outgoing` for the headers themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from .._extras import missing_extra

try:
    import aiohttp
    from aiohttp import web
    from aiohttp.typedefs import Handler
except ImportError as error:
    raise missing_extra(__name__, "aiohttp", extra="aiohttp") from error

from ._server_context import RequestContextOptions, request_context
from .baggage import BAGGAGE_HEADER
from .outgoing import add_outgoing_headers
from .request_id import DEFAULT_HEADER, check_header_name, new_request_id

__all__ = ["REQUEST_ID_KEY", "context_trace_config", "setup_request_context"]


def _request_key(name: str) -> Any:
    key_class = getattr(web, "RequestKey", None)
    return name if key_class is None else key_class(name, str)


#: Where the request's id is kept on the ``web.Request`` (``request[REQUEST_ID_KEY]``):
#: a ``web.RequestKey`` where aiohttp has them (3.13+, which warns about str
#: keys), else a str.
REQUEST_ID_KEY: Any = _request_key("async_hooks.request_id")


def setup_request_context(
    app: web.Application,
    *,
    header_name: str = DEFAULT_HEADER,
    trust_incoming: bool = True,
    generate_id: Callable[[], str] = new_request_id,
    read_baggage: bool = True,
) -> None:
    """Give each request of ``app`` its own request context.

    The same behaviour and options as the ASGI middleware: the request's id
    (a valid incoming ``header_name`` header, else a fresh id) is
    ``request_id.get_store()`` for the whole handling of the request, comes
    back in the response's ``header_name`` header and is also
    ``request[REQUEST_ID_KEY]``; stores carried by a W3C ``baggage`` header are
    entered. Call it before the application starts (aiohttp freezes its
    middlewares then).
    """
    options = RequestContextOptions(
        header_name=header_name,
        trust_incoming=trust_incoming,
        generate_id=generate_id,
        read_baggage=read_baggage,
    )

    @web.middleware
    async def request_context_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        headers = request.headers
        baggage_parts = headers.getall(BAGGAGE_HEADER, ())
        baggage = ",".join(baggage_parts) if baggage_parts else None
        with request_context(headers.get(header_name), baggage, options) as chosen_id:
            request[REQUEST_ID_KEY] = chosen_id
            return await handler(request)

    async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
        chosen_id = request.get(REQUEST_ID_KEY)
        if chosen_id is not None and header_name not in response.headers:
            response.headers[header_name] = chosen_id

    # First in the list is outermost: error-handling middlewares added by the
    # application run inside the request's context.
    app.middlewares.insert(0, request_context_middleware)
    app.on_response_prepare.append(add_request_id_header)


# -- the client --------------------------------------------------------------


def context_trace_config(*, request_id_header: str = DEFAULT_HEADER) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that adds the context headers to each request of a session."""
    check_header_name(request_id_header)

    async def add_context_headers(
        session: aiohttp.ClientSession,
        trace_context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        add_outgoing_headers(params.headers, request_id_header=request_id_header)

    trace_config = aiohttp.TraceConfig()
    trace_config.on_request_start.append(add_context_headers)
    return trace_config
