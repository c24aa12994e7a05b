"""Node.js asynchronous context tracking for Python.

``AsyncLocalStorage`` carries a store through every await, task, callback
and timer; ``AsyncResource`` re-attaches a callback to the context where it
was created; ``create_hook`` watches the life of every asynchronous resource.
See README.md for the map from Node's names to these.

The other faces: :mod:`async_hooks.propagation` (context across threads,
pools, processes and generators), :mod:`async_hooks.diagnostics` (what is
running, and why), :mod:`async_hooks.lowlevel` (for tool builders),
:mod:`async_hooks.errors`, :mod:`async_hooks.trio` and one module per
library under :mod:`async_hooks.integrations`.
"""

# Imported for its effect: asyncio, uvloop and threads are tracked while a hook is enabled.
from . import _runtime  # noqa: F401
from ._active import get_active_resources_info
from ._execution import execution_async_id, execution_async_resource, trigger_async_id
from ._hooks import AsyncHook, create_hook
from ._policy import Crossing
from ._resource import AsyncResource
from ._storage import AsyncLocalStorage, isolated
from .errors import AsyncHooksError

__all__ = [
    "AsyncHook",
    "AsyncHooksError",
    "AsyncLocalStorage",
    "AsyncResource",
    "Crossing",
    "create_hook",
    "execution_async_id",
    "execution_async_resource",
    "get_active_resources_info",
    "isolated",
    "trigger_async_id",
]

# repr() and help() name the path users import from, not the private module.
for _name in __all__:
    if _name != "AsyncHooksError":  # errors.py is its home, and a face of its own
        globals()[_name].__module__ = __name__
del _name
