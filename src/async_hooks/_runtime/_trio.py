"""Lifecycle events for trio tasks, translated from trio's instrument API.

trio reports what its scheduler does to a ``trio.abc.Instrument``:
``task_spawned``, ``before_task_step``, ``after_task_step`` and
``task_exited``. :class:`LifecycleInstrument` turns those into this
package's ``init``/``before``/``after``/``destroy`` events, with the ids and
scope rules of asyncio's tasks:

* every trio task gets an async id; its trigger id is the execution id of
  the code that spawned it (the task that called ``start_soon``/``start``,
  or the ``AsyncResource`` scope it called it from);
* the task's ``ExecutionFrame`` is set inside ``task.context`` at spawn.
  trio gives each task a context of its own (a copy of the spawner's), and
  runs every step of the task inside it, so ``execution_async_id()`` is
  right in every step without any work per step;
* ``before``/``after`` are emitted inside the task's context, as Node
  emits them inside the resource's scope.

Two ways in: pass ``async_hooks.trio.instrument()`` to
``trio.run(..., instruments=[...])``, or let :func:`enable_auto_tracking`
attach one whenever a hook is enabled. It is called when
:mod:`async_hooks.trio` is imported, and by the runtime package's activation
listener when the first hook is enabled in a program that imported trio.
That path wraps ``trio.run`` and ``trio.lowlevel.start_guest_run`` only
while a hook is enabled, and adds the instrument to the run in progress if a
hook is enabled inside one.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import trio
from trio.lowlevel import Task

from .. import _hooks
from .._execution import ExecutionFrame, current_frame
from ._live import TrackedResource, finish, forget, live_resources, track

# Not the class name "Task": asyncio's tasks already report that, and a tool
# looking at a program that runs both (trio-asyncio, a thread of each) must
# be able to tell them apart.
TRIO_TASK_TYPE = "TrioTask"


class LifecycleInstrument(trio.abc.Instrument):
    """A trio instrument that emits this package's lifecycle events for tasks.

    Use one instance per ``trio.run``. It does nothing (beyond forgetting
    the tasks that exit) while no hook is enabled, so it may stay installed.
    """

    def __init__(self, *, leaves_when_idle: bool = False) -> None:
        # The frame of every task this instrument gave an id to, until it exits.
        self._frames: dict[Task, TrackedResource] = {}
        # The task whose step is between our before and after events.
        self._stepping: Task | None = None
        # Its exit happened inside that step: destroy waits for after.
        self._stepping_exited = False
        # Installed automatically: take ourselves out once no hook listens.
        self._leaves_when_idle = leaves_when_idle
        self.attached = True

    def task_spawned(self, task: Task) -> None:
        if task.parent_nursery is None:
            # The init task: the first task of a run, so this names the run.
            _instrument_of_run[task] = self
        if not _hooks.enabled.hooks:
            self._idle()
            return
        # trio calls this from inside start_soon, in the spawner's context:
        # the trigger is the spawner's execution.
        record = track(task.context)
        if not _set_frame(task, record):
            forget(record)
            return
        self._frames[task] = record
        record.attach(task, TRIO_TASK_TYPE)

    def before_task_step(self, task: Task) -> None:
        frame = self._frames.get(task)
        if frame is None:
            if not _hooks.enabled.hooks:
                self._idle()
                return
            frame = self._adopt(task)
            if frame is None:
                return
        self._stepping = task
        self._stepping_exited = False
        if _hooks.enabled.before:
            task.context.run(_hooks.emit_before, frame.async_id)

    def after_task_step(self, task: Task) -> None:
        if self._stepping is not task:
            # Installed in the middle of this step: no before was emitted.
            return
        self._stepping = None
        exited, self._stepping_exited = self._stepping_exited, False
        frame = self._frames.pop(task, None) if exited else self._frames.get(task)
        if frame is None:
            return
        if _hooks.enabled.after:
            task.context.run(_hooks.emit_after, frame.async_id)
        if exited:
            _finish(frame)

    def task_exited(self, task: Task) -> None:
        if task is self._stepping:
            # trio reports the exit inside the task's last step, before
            # after_task_step; Node's order is before, after, destroy.
            self._stepping_exited = True
            return
        frame = self._frames.pop(task, None)
        if frame is not None:
            _finish(frame)

    def _adopt(self, task: Task) -> TrackedResource | None:
        """Give an id to a task spawned while no hook was enabled.

        As in Node, a resource created before any hook listened gets no
        ``init``, but its later steps and its end are reported. The frame
        the task inherited is that of the code that spawned it, so its id
        is the trigger; a frame already naming this task (set by an earlier
        instrument) is kept, so a task's id never changes.
        """
        inherited = task.context.run(current_frame.get)
        if isinstance(inherited, TrackedResource) and inherited.resource is task:
            record = inherited
            live_resources.setdefault(record.async_id, record)
        else:
            record = track(task.context, trigger_async_id=inherited.async_id)
            if not _set_frame(task, record):
                forget(record)
                return None
            # Born while no hook listened: no init (as in Node), but listed.
            record.attach(task, TRIO_TASK_TYPE, emit=False)
        self._frames[task] = record
        return record

    def _idle(self) -> None:
        self._forget_tasks()
        if self._leaves_when_idle and self.attached:
            self.detach()

    def _forget_tasks(self) -> None:
        # No longer followed: no longer listed as live either. A task keeps
        # its record (and id) in its context, for when tracking comes back.
        for record in self._frames.values():
            forget(record)
        self._frames.clear()

    def detach(self) -> None:
        """Remove this instrument from the current run (a no-op outside it)."""
        self.attached = False
        self._forget_tasks()
        self._stepping = None
        # KeyError: not (or no longer) in this run; RuntimeError: not in a run.
        with contextlib.suppress(KeyError, RuntimeError):
            trio.lowlevel.remove_instrument(self)


def _finish(record: TrackedResource) -> None:
    record.context = None  # a task's context holds its record: no cycle left
    finish(record)


def _set_frame(task: Task, frame: ExecutionFrame) -> bool:
    try:
        task.context.run(current_frame.set, frame)
    except RuntimeError:
        # The task was given a context that is running right now (possible
        # with spawn_system_task(context=...)); it shares that execution's
        # scope, and we must not change it under the running code.
        return False
    return True


# The instrument tracking each run in progress, by the run's init task.
_instrument_of_run: weakref.WeakKeyDictionary[Task, LifecycleInstrument] = (
    weakref.WeakKeyDictionary()
)


# -- automatic tracking: attach an instrument whenever a hook is enabled ---------

_patch_lock = threading.Lock()
# The functions that start a run, wrapped while a hook is enabled: module, name.
_RUN_STARTERS: tuple[tuple[Any, str], ...] = (
    (trio, "run"),
    (trio.lowlevel, "start_guest_run"),
)
# The originals of the ones wrapped right now, by name.
_originals: dict[str, Callable[..., Any]] = {}
_auto_tracking_enabled = False


def enable_auto_tracking() -> None:
    """Track trio runs whenever a hook is enabled. Idempotent.

    Called by :mod:`async_hooks.trio` on import, and by the runtime
    package when a hook is enabled while trio is imported. While no hook is
    enabled, trio is left exactly as it is.
    """
    global _auto_tracking_enabled
    with _patch_lock:
        if _auto_tracking_enabled:
            return
        _auto_tracking_enabled = True
    _hooks.add_activation_listener(_on_activation)
    if _hooks.enabled.hooks:
        _on_activation(True)


def _on_activation(active: bool) -> None:
    if active:
        _wrap_run_functions()
        _attach_to_current_run()
    else:
        _unwrap_run_functions()
        _detach_from_current_run()


def _with_instrument(kwargs: dict[str, Any]) -> dict[str, Any]:
    given: Sequence[trio.abc.Instrument] = kwargs.get("instruments", ())
    if _hooks.enabled.hooks and not any(isinstance(i, LifecycleInstrument) for i in given):
        kwargs["instruments"] = (*given, LifecycleInstrument(leaves_when_idle=True))
    return kwargs


def _wrap_run_functions() -> None:
    with _patch_lock:
        for module, name in _RUN_STARTERS:
            if name not in _originals:
                original = _originals[name] = getattr(module, name)
                setattr(module, name, _tracking_wrapper(original))


def _tracking_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def start_tracked(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **_with_instrument(kwargs))

    return start_tracked


def _unwrap_run_functions() -> None:
    with _patch_lock:
        for module, name in _RUN_STARTERS:
            original = _originals.get(name)
            # Restore only what is still ours: if another library wrapped it on
            # top of us, taking ours out would take theirs out too. Ours then
            # stays under theirs, passing calls through while no hook listens.
            if original is None:
                continue
            if getattr(getattr(module, name), "__wrapped__", None) is original:
                setattr(module, name, original)
                del _originals[name]


def _attach_to_current_run() -> None:
    if not trio.lowlevel.in_trio_run():
        return
    root = trio.lowlevel.current_root_task()
    if root is None:
        return
    existing = _instrument_of_run.get(root)
    if existing is not None and existing.attached:
        return
    instrument = LifecycleInstrument(leaves_when_idle=True)
    _instrument_of_run[root] = instrument
    trio.lowlevel.add_instrument(instrument)


def _detach_from_current_run() -> None:
    if not trio.lowlevel.in_trio_run():
        return
    root = trio.lowlevel.current_root_task()
    instrument = _instrument_of_run.get(root) if root is not None else None
    if instrument is not None and instrument._leaves_when_idle:
        instrument.detach()
