"""Tools on top of the lifecycle: what is still running, and why.

``get_active_resources()`` lists every live resource with its type, ids, age,
creation site and the stores of the request it belongs to; see
docs/diagnostics.md.
"""

from ._active import ActiveResource, get_active_resources
from ._runtime._live import CreationSite

__all__ = ["ActiveResource", "CreationSite", "get_active_resources"]

# repr() and help() name the path users import from, not the private module.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
