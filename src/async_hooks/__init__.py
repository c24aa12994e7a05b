"""Node.js asynchronous context tracking for Python.

``AsyncLocalStorage`` carries a store through every await, task, callback
and timer; ``AsyncResource`` re-attaches a callback to the context where it
was created; ``create_hook`` watches the life of every asynchronous resource.
See README.md for the map from Node's names to these.
"""

# Imported for its effect: asyncio, uvloop and threads are tracked while a hook is enabled.
from . import _runtime as _runtime
from ._execution import execution_async_id, execution_async_resource, trigger_async_id
from ._hooks import AsyncHook, create_hook
from ._policy import Crossing
from ._resource import AsyncResource
from ._storage import AsyncLocalStorage, isolated
from .diagnostics import ActiveResource, get_active_resources, get_active_resources_info
from .errors import AsyncHooksError
from .propagation._install import install, uninstall

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
