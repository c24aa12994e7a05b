"""Node.js asynchronous context tracking for Python.

``AsyncLocalStorage`` carries a store through every await, task, callback
and timer; ``AsyncResource`` re-attaches a callback to the context where it
was created; ``create_hook`` watches the life of every asynchronous resource.
See README.md for the map from Node's names to these.
"""

from ._store_policy import Crossing
from .errors import AsyncHooksError
from .execution import execution_async_id, execution_async_resource, trigger_async_id
from .hooks import AsyncHook, create_hook
from .propagation.install import install, uninstall
from .resource import AsyncResource
from .storage import AsyncLocalStorage, isolated

__all__ = [
    "AsyncHook",
    "AsyncHooksError",
    "AsyncLocalStorage",
    "AsyncResource",
    "Crossing",
    "create_hook",
    "execution_async_id",
    "execution_async_resource",
    "install",
    "isolated",
    "trigger_async_id",
    "uninstall",
]
