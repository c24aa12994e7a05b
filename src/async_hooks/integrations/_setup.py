"""One call for the common case: server middleware, log fields, outgoing clients, ``install()``.

    app = setup(FastAPI(), clients=[httpx.AsyncClient()])  # serve the app it returns

Each step is the integration a user would otherwise set up by hand; this
module only picks the right one for what it is given, importing a library
only when it is handed an object of that library.
"""

from __future__ import annotations

import inspect
import logging as _logging
from collections.abc import Callable, Iterable
from typing import Any

from .._validation import describe
from ..errors import InvalidArgTypeError
from ..propagation import install as _install
from .asgi import RequestContextMiddleware as ASGIMiddleware
from .logging import StoreFilter
from .outgoing import OutgoingPolicy, set_outgoing_policy
from .request_id import DEFAULT_HEADER, check_header_name
from .wsgi import RequestContextMiddleware as WSGIMiddleware

# What setup() puts on the root logger when it has no handler yet.
_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


def setup(
    app: Any = None,
    *,
    logging: bool | _logging.Handler | Iterable[_logging.Handler] = True,
    clients: Iterable[Any] = (),
    policy: OutgoingPolicy | None = None,
    install: bool = True,
    header_name: str = DEFAULT_HEADER,
    **middleware_options: Any,
) -> Any:
    """Set up request context for ``app`` and what it calls; returns what to serve.

    * ``app``: an aiohttp ``web.Application`` (gets ``setup_request_context``
      and is returned), a Flask app (its ``wsgi_app`` is wrapped; the app is
      returned), an ASGI app (an async callable: Starlette, FastAPI, Django's
      ASGI handler; returned wrapped in the ASGI middleware, outermost) or a
      WSGI app (any other callable; returned wrapped). None: no server.
      ``middleware_options`` (``trust_incoming``, ``validator``, ...) go to
      the middleware.
    * ``logging``: True puts a ``StoreFilter`` (the ``request_id`` field) on
      every handler of the root logger, or, when it has none, adds one that
      shows the id; a handler or handlers: those get the filter; False:
      nothing.
    * ``clients``: httpx ``Client``/``AsyncClient`` and requests ``Session``
      objects to instrument (aiohttp sessions take ``context_trace_config()``
      when they are made, so they cannot be given here).
    * ``policy``: made the global outgoing policy (default: left as it is,
      which sends the stores to no host).
    * ``install``: call ``async_hooks.propagation.install()``, so that threads,
      pools and ``run_in_executor`` carry the context (log lines from an
      executor show the id).
    * ``header_name``: the request-id header, for the middleware and the clients.

    Every argument is checked before anything is changed.
    """
    check_header_name(header_name, "header_name")
    handlers = _handlers(logging)
    instrumenters = [_instrumenter(client) for client in clients]
    if policy is not None and not isinstance(policy, OutgoingPolicy):
        raise InvalidArgTypeError(
            f'The "policy" argument must be an OutgoingPolicy or None. Received {describe(policy)}'
        )
    served = None if app is None else _with_middleware(app, header_name, middleware_options)
    if policy is not None:
        set_outgoing_policy(policy)
    for instrument, client in zip(instrumenters, clients, strict=True):
        instrument(client, header_name)
    if handlers is not None:
        if not handlers:
            added = _logging.StreamHandler()
            added.setFormatter(_logging.Formatter(_FORMAT))
            _logging.getLogger().addHandler(added)
            handlers = [added]
        for handler in handlers:
            if not any(isinstance(f, StoreFilter) for f in handler.filters):
                handler.addFilter(StoreFilter())
    if install:
        _install()
    return served if app is not None else None


def _handlers(option: object) -> list[_logging.Handler] | None:
    """The handlers to filter ([] means: add one), or None for none."""
    if option is False:
        return None
    if option is True:
        return list(_logging.getLogger().handlers)
    if isinstance(option, _logging.Handler):
        return [option]
    if isinstance(option, Iterable) and not isinstance(option, str | bytes):
        handlers = list(option)
        if all(isinstance(handler, _logging.Handler) for handler in handlers):
            return handlers
    raise InvalidArgTypeError(
        'The "logging" argument must be a bool, a logging.Handler or handlers. '
        f"Received {describe(option)}"
    )


def _instrumenter(client: object) -> Callable[[Any, str], object]:
    library = type(client).__module__.split(".")[0]
    if library == "httpx":
        from .httpx import instrument_httpx

        return lambda client, header: instrument_httpx(client, request_id_header=header)
    if library == "requests":
        from .requests import instrument_requests

        return lambda client, header: instrument_requests(client, request_id_header=header)
    hint = " (give aiohttp sessions trace_configs=[context_trace_config()])"
    raise InvalidArgTypeError(
        'The "clients" argument must hold httpx clients or requests sessions'
        f"{hint if library == 'aiohttp' else ''}. Received {describe(client)}"
    )


def _with_middleware(app: Any, header_name: str, options: dict[str, Any]) -> Any:
    if type(app).__module__.split(".")[0] == "aiohttp":
        from aiohttp import web

        from .aiohttp import setup_request_context

        if isinstance(app, web.Application):
            setup_request_context(app, header_name=header_name, **options)
            return app
    if not callable(app):
        raise InvalidArgTypeError(
            'The "app" argument must be an ASGI, WSGI, Flask or aiohttp application. '
            f"Received {describe(app)}"
        )
    wsgi_app = getattr(app, "wsgi_app", None)
    if callable(wsgi_app) and type(app).__module__.split(".")[0] == "flask":
        app.wsgi_app = WSGIMiddleware(wsgi_app, header_name=header_name, **options)
        return app
    if _is_async(app):
        return ASGIMiddleware(app, header_name=header_name, **options)
    return WSGIMiddleware(app, header_name=header_name, **options)


def _is_async(app: Any) -> bool:
    # ASGI apps are coroutine functions, or objects whose __call__ is one.
    if inspect.iscoroutinefunction(app):
        return True
    for klass in type(app).__mro__:
        if "__call__" in vars(klass):
            return inspect.iscoroutinefunction(vars(klass)["__call__"])
    return False
