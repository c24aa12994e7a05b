"""A WSGI middleware that gives each request its own request context.

It works with any WSGI framework (Flask, Django, Pyramid, Bottle...) and any
WSGI server, threaded or not:

    app.wsgi_app = RequestContextMiddleware(app.wsgi_app)   # Flask
    application = RequestContextMiddleware(application)    # anything else

Each request runs in a fresh ``contextvars.Context``: the call of the app,
every step of the response iterable (so streamed bodies see the store) and
its ``close()``. Nothing entered for one request can reach the next request
served by the same worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from contextvars import Context, copy_context
from types import TracebackType
from typing import TypeAlias
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._server_context import (
    RequestContextOptions,
    cgi_header_key,
    first_of_list,
    request_context,
)
from .request_id import DEFAULT_HEADER, is_valid_request_id, new_request_id

__all__ = ["RequestContextMiddleware"]

# The standard WSGI types (wsgiref.types, Python 3.11+), so that frameworks'
# own annotations accept this middleware.
_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)


class RequestContextMiddleware:
    """Run each request of the WSGI ``app`` in its own request context.

    The same behaviour and options as the ASGI middleware
    (``async_hooks.integrations.asgi.RequestContextMiddleware``): the
    request's id (a valid incoming ``header_name`` header, else a fresh id) is
    ``request_id.get_store()`` for the whole request and comes back in the
    response's ``header_name`` header; stores carried by a W3C ``baggage``
    header are entered. The id is also in ``environ["async_hooks.request_id"]``,
    and replaces the incoming header in ``environ`` (``HTTP_X_REQUEST_ID``),
    so that the app's request headers hold the id used.
    """

    __slots__ = ("_app", "_environ_key", "_header_lower", "_options")

    def __init__(
        self,
        app: WSGIApplication,
        *,
        header_name: str = DEFAULT_HEADER,
        trust_incoming: bool = True,
        generate_id: Callable[[], str] = new_request_id,
        validator: Callable[[str], bool] = is_valid_request_id,
        transformer: Callable[[str], str] | None = None,
        read_baggage: bool = True,
    ) -> None:
        self._app = app
        self._options = RequestContextOptions(
            header_name=header_name,
            trust_incoming=trust_incoming,
            generate_id=generate_id,
            validator=validator,
            transformer=transformer,
            read_baggage=read_baggage,
        )
        self._environ_key = cgi_header_key(header_name)
        self._header_lower = header_name.lower()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        context = copy_context()
        return context.run(self._start, context, environ, start_response)

    def _start(
        self, context: Context, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        scope = ExitStack()
        incoming_id = environ.get(self._environ_key)
        if incoming_id is not None:
            incoming_id = first_of_list(incoming_id)
        chosen_id = scope.enter_context(
            request_context(incoming_id, environ.get("HTTP_BAGGAGE"), self._options)
        )
        environ["async_hooks.request_id"] = chosen_id
        # The app reads the id actually used from its own request headers.
        environ[self._environ_key] = chosen_id
        try:
            body = self._app(environ, self._starter(start_response, chosen_id))
        except BaseException:
            scope.close()
            raise
        if isinstance(body, list | tuple):
            # A ready body runs no code while it is sent: the request ends
            # here, and the server still sees a list (and can size it).
            scope.close()
            return body
        return _ResponseInContext(body, context, scope)

    def _starter(self, start_response: StartResponse, chosen_id: str) -> StartResponse:
        header_name = self._options.header_name
        header_lower = self._header_lower

        def start_response_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            if all(name.lower() != header_lower for name, _ in headers):
                headers = [*headers, (header_name, chosen_id)]
            return start_response(status, headers, exc_info)

        return start_response_with_id


class _ResponseInContext:
    """The app's response iterable, iterated and closed in the request's context.

    The server iterates after the app returned; running each step in the
    request's context keeps the store right in generators that stream the
    body, and closing the iterable ends the request's stores.
    """

    __slots__ = ("_body", "_context", "_iterator", "_scope")

    def __init__(self, body: Iterable[bytes], context: Context, scope: ExitStack) -> None:
        self._body = body
        self._context = context
        self._scope = scope
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        # PEP 3333: the server calls close() once it is done, also after errors.
        self._context.run(self._close)

    def _close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._scope.close()
