"""Node.js asynchronous context tracking for Python.

``AsyncLocalStorage`` carries a store through every await, task, callback
and timer; ``AsyncResource`` re-attaches a callback to the context where it
was created; ``create_hook`` watches the life of every asynchronous resource.
See README.md for the map from Node's names to these.
"""

# Imported for its effect: asyncio, uvloop and threads are tracked while a hook is enabled.
from . import runtime as _runtime  # noqa: F401
from ._store_policy import Crossing
from .diagnostics import ActiveResource, get_active_resources, get_active_resources_info
from .errors import AsyncHooksError
from .execution import execution_async_id, execution_async_resource, trigger_async_id
from .hooks import AsyncHook, create_hook
from .propagation.install import install, uninstall
from .resource import AsyncResource
from .storage import AsyncLocalStorage, isolated

__all__ = [
    "ActiveResource",
    "AsyncHook",
    "AsyncHooksError",
    "AsyncLocalStorage",
    "AsyncResource",
    "Crossing",
    "create_hook",
    "execution_async_id",
    "execution_async_resource",
    "get_active_resources",
    "get_active_resources_info",
    "install",
    "isolated",
    "trigger_async_id",
    "uninstall",
]
