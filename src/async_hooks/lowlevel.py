"""What tool builders need beyond Node's API.

The ids and events of ``async_hooks`` are enough to follow the life of every
resource; a tool that draws, exports or checks them also wants to know
whether the runtime is being tracked, to deliver queued ``destroy`` events
before it reports, to recognise the top-level resource, to check that the
event stream keeps the lifecycle rules (``EventChecker``), whether the
compiled hot path runs (``accelerated()``), and to have creation sites
recorded when it shows them without the diagnostics tools
(``record_creation_sites()``).
"""

from ._accelerator import accelerated
from ._checker import EventChecker, Violation
from ._execution import TopLevelResource, new_async_id
from ._hooks import flush_pending_destroys, record_creation_sites
from ._runtime import is_tracking

__all__ = [
    "EventChecker",
    "TopLevelResource",
    "Violation",
    "accelerated",
    "flush_pending_destroys",
    "is_tracking",
    "new_async_id",
    "record_creation_sites",
]

# repr() and help() name the path users import from, not the private module.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
