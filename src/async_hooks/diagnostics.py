"""Tools on top of the lifecycle: what is still running, and why."""

from ._active import ActiveResource, get_active_resources, get_active_resources_info
from ._runtime._live import CreationSite

__all__ = [
    "ActiveResource",
    "CreationSite",
    "get_active_resources",
    "get_active_resources_info",
]
