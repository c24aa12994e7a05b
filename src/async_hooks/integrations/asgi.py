"""A pure ASGI middleware that gives each request its own request context.

It works with any ASGI framework (Starlette, FastAPI, Quart, Django's ASGI
handler...) and needs none of them: it only speaks the ASGI protocol, so
unlike Starlette's ``BaseHTTPMiddleware`` it adds no task and no body
buffering, and streaming responses and background tasks keep the store.

    app = RequestContextMiddleware(app)            # outermost: best
    app.add_middleware(RequestContextMiddleware)   # Starlette/FastAPI style
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import _storage
from ._carrier import choose_request_id
from ._server_context import RequestContextOptions, request_context
from .request_id import DEFAULT_HEADER, new_request_id, request_id

__all__ = ["ASGIApp", "Message", "Receive", "RequestContextMiddleware", "Scope", "Send"]

# The ASGI types, spelled as Starlette spells them so that its
# ``add_middleware`` accepts this class, without importing Starlette.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BAGGAGE = b"baggage"
_CONTEXT_SCOPES = frozenset({"http", "websocket"})
# The messages that carry the response's headers.
_HEADERS_MESSAGES = frozenset({"http.response.start", "websocket.accept"})


class RequestContextMiddleware:
    """Run each HTTP and WebSocket request of ``app`` in its own request context.

    For the whole request, including streamed bodies, background tasks and
    exception handlers, ``request_id.get_store()`` is the request's id: the
    incoming ``header_name`` header when it is valid (1-128 characters of
    ``[A-Za-z0-9._-]``), else a fresh id, with a warning in the log for an
    invalid one. The id is returned in the response's ``header_name`` header
    unless the app set that header itself. Stores carried by a W3C
    ``baggage`` header are entered too (see docs/integrations.md).

    Lifespan and other scope types pass through untouched. Exception handlers
    that run outside this middleware (Starlette's handler for a bare
    ``Exception`` or 500) see the store only when this middleware wraps the
    whole application.
    """

    __slots__ = ("_app", "_header_key", "_options")

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = DEFAULT_HEADER,
        trust_incoming: bool = True,
        generate_id: Callable[[], str] = new_request_id,
        read_baggage: bool = True,
    ) -> None:
        self._app = app
        self._options = RequestContextOptions(
            header_name=header_name,
            trust_incoming=trust_incoming,
            generate_id=generate_id,
            read_baggage=read_baggage,
        )
        # ASGI servers give header names lowercased, as bytes.
        self._header_key = header_name.lower().encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _CONTEXT_SCOPES:
            await self._app(scope, receive, send)
            return
        header_key = self._header_key
        incoming_id: str | None = None
        baggage_parts: list[str] | None = None
        for key, value in scope["headers"]:
            # The first request-id header counts; several baggage headers are
            # one list (RFC 9110 list syntax), as the W3C specification says.
            if key == header_key:
                if incoming_id is None:
                    incoming_id = value.decode("latin-1")
            elif key == _BAGGAGE:
                if baggage_parts is None:
                    baggage_parts = []
                baggage_parts.append(value.decode("latin-1"))
        if baggage_parts is not None:
            baggage = ",".join(baggage_parts)
            with request_context(incoming_id, baggage, self._options) as chosen_id:
                await self._app(scope, receive, self._sender(send, chosen_id))
            return
        # Most requests carry no baggage: then the request context is one
        # variable set and reset, done here without request_context's
        # context-manager objects, which would cost as much again as the rest
        # of the middleware.
        chosen_id = choose_request_id(incoming_id, self._options)
        token = _storage._set(request_id, chosen_id)
        try:
            await self._app(scope, receive, self._sender(send, chosen_id))
        finally:
            _storage._reset(request_id, token)

    def _sender(self, send: Send, chosen_id: str) -> Send:
        header_key = self._header_key
        header = (header_key, chosen_id.encode("ascii"))

        async def send_with_request_id(message: Message) -> None:
            if message["type"] in _HEADERS_MESSAGES:
                headers = message.get("headers", ())
                for key, _ in headers:
                    if key.lower() == header_key:
                        break  # the app set its own: keep it
                else:
                    # A new message: the app may hold on to its own.
                    message = {**message, "headers": [*headers, header]}
            await send(message)

        return send_with_request_id
