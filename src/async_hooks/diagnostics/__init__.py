"""Tools on top of the lifecycle: what is still running, and why."""

from ..runtime.registry import CreationSite
from .active import ActiveResource, get_active_resources, get_active_resources_info

__all__ = [
    "ActiveResource",
    "CreationSite",
    "get_active_resources",
    "get_active_resources_info",
]
