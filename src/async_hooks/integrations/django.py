"""Django: a middleware that gives each request its own request context, sync or async.

Put it first in ``MIDDLEWARE``; its options come from one setting::

    MIDDLEWARE = ["async_hooks.integrations.django.RequestContextMiddleware", ...]
    ASYNC_HOOKS_REQUEST_CONTEXT = {"header_name": "X-Correlation-ID"}  # optional

It is a hybrid middleware (``sync_capable`` and ``async_capable``): under a
WSGI server it runs synchronously, under an ASGI server asynchronously, and
Django never has to put a thread between it and an async view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
)
from contextvars import copy_context
from typing import Any

from .._extras import missing_extra

try:
    # The module, not its lazy ``settings`` object: that object configures
    # Django whenever anything looks at it, even to ask its type.
    import django.conf  # type: ignore[import-untyped]  # Django ships no types
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
    from django.http import FileResponse  # type: ignore[import-untyped]
    from django.utils.module_loading import import_string  # type: ignore[import-untyped]
except ImportError as error:
    raise missing_extra(__name__, "django", extra="django") from error

# asgiref comes with Django; its marker works on every Python and Django
# version we support (inspect's own exists from 3.12 on only).
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from ..errors import AsyncHooksError
from ..propagation import bind_generator
from ._server_context import (
    RequestContextOptions,
    cgi_header_key,
    enter_request_id,
    first_of_list,
    request_context,
    reset_request_id,
)

__all__ = ["RequestContextMiddleware"]

# The Django setting that holds the middleware's options.
_SETTING = "ASYNC_HOOKS_REQUEST_CONTEXT"

# The options a setting may give, and those that name a callable (which may
# also be given as a dotted path, as Django settings usually do).
_OPTIONS = frozenset(field.name for field in dataclasses.fields(RequestContextOptions))
_CALLABLE_OPTIONS = frozenset({"generate_id", "validator", "transformer"})

# Django's request and response are untyped; these say which is which.
_Request = Any
_Response = Any


class RequestContextMiddleware:
    """Run each request in its own request context, under WSGI and under ASGI.

    The behaviour of the ASGI and WSGI middlewares
    (``async_hooks.integrations.asgi``, ``.wsgi``), with their options taken
    from the ``ASYNC_HOOKS_REQUEST_CONTEXT`` setting, a dict with any of
    ``header_name``, ``trust_incoming``, ``generate_id``, ``validator``,
    ``transformer`` and ``read_baggage`` (callables as objects or as dotted
    paths). For the whole request, streamed bodies included,
    ``request_id.get_store()`` is the request's id: the incoming header when
    ``validator`` accepts it (passed through ``transformer``), else a fresh
    id, with a warning logged in the request's context for a refused one.
    ``request.META`` and ``request.headers`` hold the id used, the response
    carries it in ``header_name`` unless the view set that header, and stores
    carried by a W3C ``baggage`` header are entered.

    Options are read and checked once, when Django builds its middleware
    chain; a wrong one raises ``ImproperlyConfigured`` naming the setting.
    """

    sync_capable = True
    async_capable = True

    # No __slots__: markcoroutinefunction marks the instance with an attribute.

    def __init__(self, get_response: Callable[[_Request], Any]) -> None:
        self.get_response = get_response
        self._options = _options_from(getattr(django.conf.settings, _SETTING, None))
        self._meta_key = cgi_header_key(self._options.header_name)
        # Django calls an async-capable middleware as a coroutine function
        # exactly when the handler it wraps is one (under ASGI, with no
        # sync-only middleware inside): then this instance must say so.
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: _Request) -> _Response | Awaitable[_Response]:
        if self._is_async:
            return self._respond_async(request)
        # A fresh context per request, as the WSGI middleware does: a WSGI
        # worker thread serves request after request in one context, so
        # whatever a view enters (any store, any ContextVar) would otherwise
        # still be there for the next request on that thread.
        return copy_context().run(self._respond, request)

    def _respond(self, request: _Request) -> _Response:
        incoming_id, baggage = self._incoming(request)
        if baggage is None:
            # The common case. This context is the request's own (see
            # __call__), so the id is entered for good: nothing to reset.
            chosen_id, _ = enter_request_id(incoming_id, self._options)
            return self._with_id(self.get_response(self._showing(request, chosen_id)), chosen_id)
        with request_context(incoming_id, baggage, self._options) as chosen_id:
            return self._with_id(self.get_response(self._showing(request, chosen_id)), chosen_id)

    async def _respond_async(self, request: _Request) -> _Response:
        # No context of our own: the ASGI handler runs each request in its
        # own task, and the request context is reset when the block ends.
        incoming_id, baggage = self._incoming(request)
        if baggage is None:
            # The common case, without request_context's generator.
            chosen_id, token = enter_request_id(incoming_id, self._options)
            try:
                response = await self.get_response(self._showing(request, chosen_id))
                return self._with_id(response, chosen_id)
            finally:
                reset_request_id(token)
        with request_context(incoming_id, baggage, self._options) as chosen_id:
            response = await self.get_response(self._showing(request, chosen_id))
            return self._with_id(response, chosen_id)

    def _incoming(self, request: _Request) -> tuple[str | None, str | None]:
        meta = request.META
        incoming_id = meta.get(self._meta_key)
        if incoming_id is not None:
            incoming_id = first_of_list(incoming_id)
        return incoming_id, meta.get("HTTP_BAGGAGE")

    def _showing(self, request: _Request, chosen_id: str) -> _Request:
        """``request``, its own headers made to hold the id used, as in the other middlewares."""
        request.META[self._meta_key] = chosen_id
        # request.headers is a cached_property read from META, and a
        # middleware before this one may have read it already. Django's
        # cached_property keeps its value in the instance's __dict__ (as
        # functools' does); dropping it there makes the next read see META,
        # without the exception a ``del`` of an unread one raises.
        request.__dict__.pop("headers", None)
        return request

    def _with_id(self, response: _Response, chosen_id: str) -> _Response:
        header_name = self._options.header_name
        if not response.has_header(header_name):
            response[header_name] = chosen_id
        # A streamed body is produced after this middleware returned, by the
        # server (WSGI) or the handler (ASGI): bound to a copy of the request's
        # context, each chunk still sees the request's stores. A file needs
        # none, and wrapping it would lose the server's sendfile path.
        if response.streaming and not isinstance(response, FileResponse):
            content = response.streaming_content
            if response.is_async:
                response.streaming_content = bind_generator(_async_chunks(content))
            else:
                response.streaming_content = bind_generator(_chunks(content))
        return response


def _chunks(content: Iterable[bytes]) -> Generator[bytes, None, None]:
    yield from content


async def _async_chunks(content: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    async for chunk in content:
        yield chunk


def _options_from(setting: object) -> RequestContextOptions:
    """The middleware's options from the value of the ``ASYNC_HOOKS_REQUEST_CONTEXT`` setting."""
    if setting is None:
        return RequestContextOptions()
    if not isinstance(setting, Mapping):
        raise ImproperlyConfigured(
            f"{_SETTING} must be a dict of options. Received {type(setting).__name__}"
        )
    unknown = sorted(map(str, set(setting) - _OPTIONS))
    if unknown:
        raise ImproperlyConfigured(
            f"{_SETTING} has unknown options {', '.join(map(repr, unknown))}; "
            f"the options are {', '.join(sorted(_OPTIONS))}"
        )
    options = dict(setting)
    for name in _CALLABLE_OPTIONS & set(options):
        if isinstance(options[name], str):
            try:
                options[name] = import_string(options[name])
            except ImportError as error:
                raise ImproperlyConfigured(f"{_SETTING}[{name!r}]: {error}") from error
    try:
        return RequestContextOptions(**options)
    except AsyncHooksError as error:
        # Our own message names the option and what arrived; Django users
        # look for a settings error.
        raise ImproperlyConfigured(f"{_SETTING}: {error}") from error
