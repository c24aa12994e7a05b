"""Tools on top of the lifecycle: what is still running, and why.

``get_active_resources()`` lists every live resource with its type, ids, age,
creation site and the stores of the request it belongs to; see
docs/diagnostics.md. The tools of ``python -m async_hooks`` are here as
Python APIs too: ``TraceWriter`` (Chrome trace files), ``why_running()``
with a ``ResourceHistory`` for causal chains, ``StallDetector`` (steps
that block the event loop), ``write_html_report()`` and ``serve_live()`` (the
task tree for ``python -m async_hooks ps|tree PID``); see docs/tools.md.
"""

from ._active import ActiveResource, get_active_resources
from ._runtime._live import CreationSite
from ._tools._history import ResourceHistory
from ._tools._html import write_html_report
from ._tools._live_view import serve_live
from ._tools._stalls import Stall, StallDetector
from ._tools._trace import TraceWriter
from ._tools._why_running import why_running

__all__ = [
    "ActiveResource",
    "CreationSite",
    "ResourceHistory",
    "Stall",
    "StallDetector",
    "TraceWriter",
    "get_active_resources",
    "serve_live",
    "why_running",
    "write_html_report",
]

# repr() and help() name the path users import from, not the private module.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
