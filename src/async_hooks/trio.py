"""Lifecycle hooks for trio (the optional extra ``async-hooks[trio]``).

Importing this module is all it takes: from then on, whenever at least one
hook is enabled, every trio run gets ``init``/``before``/``after``/``destroy``
events for its tasks (type ``"TrioTask"``, resource: the
``trio.lowlevel.Task``), and ``execution_async_id()`` inside a task is that
task's id. To choose explicitly which runs are tracked, pass an instrument::

    trio.run(main, instruments=[async_hooks.trio.instrument()])

AsyncLocalStorage and AsyncResource need nothing from here: trio copies the
context into every task it spawns, so stores already follow trio tasks.
"""

from ._extras import missing_extra as _missing_extra

try:
    import trio as _trio  # noqa: F401  (imported to fail early, with advice)
except ImportError as error:
    raise _missing_extra(__name__, "trio", extra="trio") from error

from ._runtime._trio import TRIO_TASK_TYPE, LifecycleInstrument
from ._runtime._trio import enable_auto_tracking as _enable_auto_tracking

__all__ = ["TRIO_TASK_TYPE", "LifecycleInstrument", "instrument"]


def instrument() -> LifecycleInstrument:
    """A new instrument for one ``trio.run(..., instruments=[...])``.

    It emits events only while at least one hook is enabled, and stays
    installed (idle) otherwise. A run given one is not given a second one
    automatically.
    """
    return LifecycleInstrument()


# repr() and help() name the path users import from, not the private module.
LifecycleInstrument.__module__ = __name__

_enable_auto_tracking()
