"""Optional integrations: logging, web servers, HTTP clients, task queues.

Each integration lives in its own module and imports its library only when
that module is imported, so ``import async_hooks`` (and this package) never
pulls in starlette, aiohttp, structlog or any other optional dependency.
Import what you use, e.g. ``from async_hooks.integrations.asgi import
RequestContextMiddleware``, or set up the common case with one call::

    app = async_hooks.integrations.setup(app, clients=[httpx.AsyncClient()])
"""

from ._setup import setup

__all__ = ["setup"]
setup.__module__ = __name__  # help() and repr() say async_hooks.integrations.setup
