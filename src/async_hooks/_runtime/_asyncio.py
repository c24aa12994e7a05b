"""Lifecycle events for asyncio's own resources, on the stdlib loop and on uvloop.

While a hook is enabled, the loop methods that create resources are
replaced on the loop *classes* (``asyncio.BaseEventLoop`` and, when it is
installed, ``uvloop.Loop``), so loops that already run are tracked too. What
they return is what asyncio returns: the user's coroutine stays the task's
(``task.get_coro()``), ``loop.create_future()`` gives asyncio's own Future,
and a stdlib handle keeps the user's callback (``handle._callback``).

* Tasks: ``create_task`` gives the task a record whose frame is inside the
  task's own context, so every step reports the task's ids with no work per
  step. A task runs each step from a handle the loop schedules for it
  (``loop.call_soon(<the task's step>, context=<its context>)``): ``before``
  and ``after`` surround that handle's run, and ``promise_resolve`` then
  ``destroy`` follow the step that finishes the task. A task built directly
  with ``asyncio.Task(...)`` is tracked from the first step it schedules.
* Futures: ``create_future`` files a record for the future; when it is
  resolved, it schedules its done-callbacks with itself as their argument,
  which is when ``promise_resolve`` and ``destroy`` are emitted. A future
  nobody waits for gets its ``destroy`` when it is collected.
* Handles and timers (``call_soon``, ``call_soon_threadsafe``,
  ``call_later``, ``call_at``): on the stdlib loop, ``Handle._run`` (a
  Python method) emits ``before``/``after`` around the user's callback and
  ``destroy`` after it, and ``Handle.cancel`` emits ``destroy``; the handle
  and its callback are untouched. uvloop builds its handles in C and runs
  them with no Python method to wrap: there the callback is wrapped
  (:class:`TrackedCallback`), which uvloop never shows.
* ``run_in_executor`` submits an :class:`ExecutorJob`.

Every resource's callbacks run with the resource's frame current, so
``execution_async_id()`` and friends name it there. All of it is undone,
to the identical original objects, when the last hook is disabled.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
import threading
import weakref
from asyncio import format_helpers
from collections.abc import Callable
from contextvars import Context, copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _hooks
from .._accelerator import speedups
from .._coroutines import is_coroutine
from .._execution import current_frame
from .._patching import Patches
from ._live import TrackedResource, end, finish, forget, record_in, run_as, track

T = TypeVar("T")

_patches = Patches()

# The records of asyncio's own objects, by id(): asyncio's objects cannot
# carry a reference to their record without changing what users see.
_tasks: dict[int, TrackedResource] = {}
_futures: dict[int, TrackedResource] = {}
_handles: dict[int, TrackedResource] = {}


# -- tasks ---------------------------------------------------------------------

# The callbacks a task schedules to run its own steps: their handles are not
# resources of their own, they run the task's steps.
_TASK_STEP_NAMES = frozenset({"task_wakeup", "_Task__step", "_Task__wakeup", "__step", "__wakeup"})


# asyncio's C Task, and its pure-Python twin (which asyncio's own tests and
# some task factories use).
_TASK_TYPES: tuple[type, ...] = tuple(
    {asyncio.Task, getattr(asyncio.tasks, "_PyTask", asyncio.Task)}
)


# The type of the C Task's step objects (TaskStepMethWrapper), learned from
# the first one seen: most calls of call_soon and Handle._run carry one, and
# a type test is all the hot paths then make.
_step_types: set[type] = set()


def _task_of_step(callback: object) -> asyncio.Task[Any] | None:
    """The task whose step ``callback`` is, else None."""
    cls = type(callback)
    if cls in _step_types:
        return callback.__self__  # type: ignore[attr-defined, no-any-return]
    owner = getattr(callback, "__self__", None)
    if not isinstance(owner, _TASK_TYPES):
        return None
    task: asyncio.Task[Any] = owner  # type: ignore[assignment]  # one of the Task types
    if cls.__name__ == "TaskStepMethWrapper":
        _step_types.add(cls)
        return task
    return task if getattr(callback, "__name__", None) in _TASK_STEP_NAMES else None


class _TaskCreation(threading.local):
    # The record of the task that create_task is making on this thread: its
    # constructor schedules the first step before create_task has the task.
    record: TrackedResource | None = None


_creating = _TaskCreation()


def _tracked_create_task(original: Callable[..., asyncio.Task[Any]]) -> Callable[..., Any]:
    def create_task(self: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        if not _hooks.enabled.hooks or not (type(coro) is CoroutineType or is_coroutine(coro)):
            return original(self, coro, **kwargs)
        record = track(resource=_running_task)
        outer = _creating.record
        _creating.record = record
        context: Context | None = kwargs.get("context")
        try:
            if context is None:
                # The task's context is a copy of this one, taken by its
                # constructor: made with this record as the frame, it holds
                # the task's ids for every step (an eager first step too).
                token = current_frame.set(record)
                try:
                    task = original(self, coro, **kwargs)
                finally:
                    current_frame.reset(token)
                record.frame_in_context = True
            else:
                task = original(self, coro, **kwargs)  # the user's context: left as it is
        except BaseException:
            if not record.initialized:
                forget(record)
            raise
        finally:
            _creating.record = outer
        # Only a task factory starts a task eagerly (3.12+); a loop without
        # the stdlib loop's attribute for it (uvloop) is asked the long way.
        _adopt(task, record, eager=getattr(self, "_task_factory", True) is not None)
        # A task factory may return any awaitable-like object: only a Task's
        # context and state are read.
        get_context = getattr(task, "get_context", None)
        if get_context is not None:
            record.context = get_context()
        else:
            # 3.11 does not expose a task's context (nor does an object that
            # is not a Task): the creator's is what the task's own started from.
            record.context = context if context is not None else copy_context()
        if getattr(task, "_source_traceback", None):  # debug mode's record of where
            _hide_our_frames(task)
        return task

    return create_task


def _running_task() -> object:
    # What execution_async_resource() names inside an eager first step, which
    # runs inside the Task constructor, before create_task holds the task.
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _adopt(task: asyncio.Task[Any], record: TrackedResource, *, eager: bool = True) -> None:
    """File ``task`` under ``record`` and emit its init, once.

    ``eager=False`` says the task cannot have run a step yet (no task
    factory, which is what starts a task eagerly).
    """
    if record.initialized:
        return
    if record.filed_in is None:
        record.file(_tasks, task)
    record.attach(task)
    if eager and _first_step_ran(task):
        # An eager first step (3.12+) ran inside the Task constructor, before
        # init could name the task: its before/after come now, after init,
        # with the resolution inside them if that step finished the task.
        if _hooks.enabled.before:
            _hooks.emit_before(record.async_id)
        if task.done():
            _task_finished_inside_step(record)
        elif _hooks.enabled.after:
            _hooks.emit_after(record.async_id)


def _first_step_ran(task: object) -> bool:
    """Whether ``task`` (just built) already ran a step: an eager one did."""
    if not isinstance(task, asyncio.Future):
        return False  # a factory's own kind of object: nothing known of its steps
    if task.done():
        # Finished inside its constructor. (Also: CPython 3.12.1 crashes on
        # get_coro() of a task that completed eagerly; never ask it then.)
        return True
    get_coro = getattr(task, "get_coro", None)
    coro = None if get_coro is None else get_coro()
    # inspect.getcoroutinestate(coro) != CORO_CREATED, read off the coroutine.
    return type(coro) is CoroutineType and (
        coro.cr_running or coro.cr_suspended or coro.cr_frame is None
    )


def _task_record_for_step(
    task: asyncio.Task[Any], context: Context | None
) -> TrackedResource | None:
    """The record of ``task``, scheduling a step in ``context``; a new task is tracked now."""
    record = _tasks.get(id(task)) or record_in(context, task)
    if record is not None:
        return record
    record = _creating.record
    if record is not None:
        # create_task's task, scheduling its first step from its constructor:
        # filed now, its init comes when create_task is back in its creator's
        # scope (init reports the creator as the one executing).
        record.file(_tasks, task)
        return record
    # Not made by create_task: asyncio.Task(...) built directly. Its
    # constructor schedules its first step: track it from there.
    coro = task.get_coro()
    if not inspect.iscoroutine(coro) or inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
        return None  # an older task, born before any hook listened
    record = track()
    _adopt(task, record)
    return record


# -- futures -------------------------------------------------------------------


def _tracked_create_future(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_future(self: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = original(self)
        if _hooks.enabled.hooks:
            record = track()
            record.context = copy_context()
            record.file(_futures, future)
            record.attach(future)
        return future

    return create_future


def _resolved(first_argument: object) -> None:
    """A callback was scheduled with ``first_argument``: a future resolving, maybe."""
    record = _futures.get(id(first_argument))
    if record is not None and first_argument.done():  # type: ignore[attr-defined]
        if _hooks.enabled.promise_resolve:
            _hooks.emit_promise_resolve(record.async_id)
        finish(record)


# -- handles and timers: what both loops share -----------------------------------


def _passes_through(callback: object) -> bool:
    """Whether a callback the stdlib loop will hold is left untracked.

    The delivery of collected resources' destroys is scheduled from inside
    the garbage collector, where no event may be emitted. Anything else is
    tracked: the stdlib loop keeps the user's callback in its handle and
    makes its own checks (a coroutine function in debug mode) on it.
    """
    return callback is _hooks.flush_pending_destroys


def _wrapping_would_hide(callback: object, *, checked: bool) -> bool:
    """Whether uvloop must get the bare callback rather than our wrapper.

    What is not a plain callable is left to uvloop, which rejects it in its
    own words: a coroutine function where uvloop checks for one (``checked``:
    always for signal handlers, in debug mode for the rest). The test for a
    coroutine function is a dozen calls into inspect, so it is made only
    where uvloop would make it too.
    """
    return (
        callback is _hooks.flush_pending_destroys
        or not callable(callback)
        or (checked and inspect.iscoroutinefunction(callback))
    )


class _Scheduling(threading.local):
    # True while a replaced scheduling method runs the loop's own: the loop's
    # call_later calls call_at, which must not track the same handle again.
    active = False


_scheduling = _Scheduling()


def _schedule_untracked(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    leading: tuple[Any, ...],
    callback: Any,
    args: tuple[Any, ...],
    context: Context | None,
) -> Any:
    if not leading:
        # call_soon and call_soon_threadsafe call no other scheduling method.
        return original(loop, callback, *args, context=context)
    _scheduling.active = True
    try:
        return original(loop, *leading, callback, *args, context=context)
    finally:
        _scheduling.active = False


def _record_for(context: Context | None, *, frame_inside: bool) -> tuple[TrackedResource, Context]:
    """A new record for a handle, and the context the handle should run in.

    With ``frame_inside``, a context of the handle's own (what the loop would
    make itself: a copy of the current one) gets the handle's frame, so that
    its callback needs no frame switch. The record then holds a context that
    holds the record: only for handles whose end is always seen (run or
    cancelled), where finish() breaks that cycle.
    """
    record = track()
    if context is None:
        context = copy_context()
        if frame_inside:
            context.run(current_frame.set, record)
            record.frame_in_context = True
    record.context = context
    return record, context


# -- handles and timers on the stdlib loop -------------------------------------

# Handles scheduled from another thread: their init must come before they
# run, and the loop's thread may run them before call_soon_threadsafe returns.
_threadsafe_lock = threading.Lock()
_threadsafe_pending = 0

_OUR_DIR = os.path.dirname(os.path.dirname(__file__))


def _hide_our_frames(obj: Any) -> None:
    # Debug mode records where a task was created, asyncio's frames taken
    # out. Ours sit between asyncio and the user's code.
    source = getattr(obj, "_source_traceback", None)
    if source:
        source[:] = [frame for frame in source if not frame.filename.startswith(_OUR_DIR)]


def _stdlib_schedule(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    leading: tuple[Any, ...],
    callback: Any,
    args: tuple[Any, ...],
    context: Context | None,
    threadsafe: bool = False,
) -> Any:
    if _scheduling.active:
        return original(loop, *leading, callback, *args, context=context)
    if args:
        _resolved(args[0])
    task = _task_of_step(callback)
    if task is not None:
        # The task's own step: Handle._run finds the task from the callback.
        _task_record_for_step(task, context)
        return original(loop, *leading, callback, *args, context=context)
    if not _hooks.enabled.hooks or _passes_through(callback):
        return _schedule_untracked(original, loop, leading, callback, args, context)
    record, context = _record_for(context, frame_inside=True)
    if not threadsafe:
        handle = _create_handle(original, loop, leading, callback, args, context, record)
    else:
        global _threadsafe_pending
        with _threadsafe_lock:
            _threadsafe_pending += 1
            try:
                handle = _create_handle(original, loop, leading, callback, args, context, record)
            finally:
                _threadsafe_pending -= 1
    if loop.get_debug():
        # What asyncio records for a handle made by the user's own call: the
        # stack from that call up (asyncio takes its own frames out, but not
        # ours, and a nested call_later -> call_at would take out the wrong one).
        handle._source_traceback = format_helpers.extract_stack(sys._getframe(2))
    return handle


def _stdlib_call_soon(original: Callable[..., Any]) -> Callable[..., Any]:
    """call_soon on the stdlib loop: _stdlib_schedule, its commonest calls in one frame.

    Those are a tracked task's next step, and a callback of the user's with
    no arguments, outside debug mode: what _stdlib_schedule does for them,
    written out here because this runs for nearly every callback a program
    schedules. Every other call goes to _stdlib_schedule.
    """

    def call_soon(
        self: asyncio.AbstractEventLoop,
        callback: Any,
        *args: Any,
        context: Context | None = None,
    ) -> Any:
        if type(callback) in _step_types:
            task = callback.__self__
            if id(task) not in _tasks:
                record = _creating.record
                if record is None or record.filed_in is not None:
                    return _stdlib_schedule(original, self, (), callback, args, context)
                # create_task's task, scheduling its first step from its constructor.
                record.file(_tasks, task)
            if args:
                return original(self, callback, *args, context=context)
            return original(self, callback, context=context)
        if (
            args
            or not _hooks.enabled.hooks
            or self._debug  # type: ignore[attr-defined]
            or callback is _hooks.flush_pending_destroys
            or isinstance(getattr(callback, "__self__", None), _TASK_TYPES)
        ):
            return _stdlib_schedule(original, self, (), callback, args, context)
        record = track()
        if context is None:
            context = copy_context()
            context.run(current_frame.set, record)
            record.frame_in_context = True
        record.context = context
        try:
            handle = original(self, callback, context=context)
        except BaseException:
            forget(record)
            raise
        record.attach(handle)
        record.file(_handles, handle)
        return handle

    return call_soon


def _create_handle(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    leading: tuple[Any, ...],
    callback: Any,
    args: tuple[Any, ...],
    context: Context,
    record: TrackedResource,
) -> Any:
    try:
        handle = _schedule_untracked(original, loop, leading, callback, args, context)
    except BaseException:
        forget(record)
        raise
    # Init first, then filed: the loop's thread may run a threadsafe handle
    # before this returns, and a handle it finds filed must have had its
    # init (one it does not find waits for _threadsafe_lock).
    record.attach(handle)
    record.file(_handles, handle)
    return handle


def _tracked_handle_run(original: Callable[[asyncio.Handle], None]) -> Callable[..., None]:
    def _run(self: asyncio.Handle) -> None:
        callback = self._callback  # type: ignore[attr-defined]
        task = callback.__self__ if type(callback) in _step_types else None
        if task is not None:
            # A C task's step, the commonest run of all: never filed as a
            # handle, and in the usual case its record is filed by the task
            # and is already the frame of the context the step runs in.
            record = _tasks.get(id(task))
            if record is not None and record.frame_in_context:
                callback = None
                async_id = record.async_id
                if _hooks.enabled.before:
                    _hooks.emit_before(async_id)
                try:
                    original(self)
                finally:
                    if task.done():
                        _task_finished_inside_step(record)
                    elif _hooks.enabled.after:
                        _hooks.emit_after(async_id)
                    self = task = None  # type: ignore[assignment]  # see below
                return None
        context: Context = self._context  # type: ignore[attr-defined]
        if task is not None:
            record = _tasks.get(id(task)) or record_in(context, task)
        else:
            record = _handles.get(id(self))
            if record is None:
                # Not filed: another kind of task step, or one the compiled
                # tracking made (found from its context, like its tasks' steps).
                task = _task_of_step(callback)
                if task is not None:
                    record = _tasks.get(id(task)) or record_in(context, task)
                else:
                    record = record_in(context, self)
                if record is None and task is None and _threadsafe_pending:
                    with _threadsafe_lock:  # its init is on its way: wait for it
                        record = _handles.get(id(self))
        callback = None
        if record is None:
            return original(self)  # nobody tracked it
        token = None if record.frame_in_context else context.run(current_frame.set, record)
        async_id = record.async_id
        if _hooks.enabled.before:
            _hooks.emit_before(async_id)
        try:
            original(self)
        finally:
            if task is None:
                if _hooks.enabled.after:
                    _hooks.emit_after(async_id)
                if not record.repeats:
                    finish(record)
            elif task.done():
                _task_finished_inside_step(record)
            elif _hooks.enabled.after:
                _hooks.emit_after(async_id)
            if token is not None:
                context.run(current_frame.reset, token)
            # A failing callback's traceback keeps this frame alive (through
            # the frames it called): holding the handle or the task here would
            # make a cycle through the exception, as asyncio's own _run knows.
            self = task = None  # type: ignore[assignment]
        return None

    return _run


def _task_finished_inside_step(record: TrackedResource) -> None:
    # The order asyncio users see in Node's terms: the promise resolves inside
    # the step that settled it, then the step ends, then the task is gone.
    if _hooks.enabled.promise_resolve:
        _hooks.emit_promise_resolve(record.async_id)
    if _hooks.enabled.after:
        _hooks.emit_after(record.async_id)
    finish(record)


def _tracked_handle_cancel(original: Callable[[asyncio.Handle], None]) -> Callable[..., None]:
    def cancel(self: asyncio.Handle) -> None:
        record = _handles.get(id(self)) or record_in(self._context, self)  # type: ignore[attr-defined]
        original(self)
        if record is not None:
            end(record)

    return cancel


# -- handles and timers on uvloop ------------------------------------------------


if TYPE_CHECKING or speedups is None:

    class TrackedCallback:
        """The callback a uvloop handle runs: the user's, between ``before`` and ``after``.

        uvloop lets go of it when the handle is cancelled (or the reader, writer
        or signal handler removed): the record watches it for that.
        """

        __slots__ = ("__weakref__", "_ready", "callback", "record")

        def __init__(self, callback: Callable[..., object], record: TrackedResource) -> None:
            self.callback = callback
            self.record = record
            # call_soon_threadsafe: held by the scheduling thread until init was
            # emitted, since the loop may run the handle before that thread resumes.
            self._ready: threading.Lock | None = None

        def __call__(self, *args: Any) -> None:
            if self._ready is not None:
                with self._ready:
                    pass
            record = self.record
            try:
                run_as(record, self.callback, *args)
            finally:
                if not record.repeats:
                    finish(record)

        def __repr__(self) -> str:
            return repr(self.callback)

    class _TaskStep:
        """A task's step on uvloop, run between the task's ``before`` and ``after``."""

        __slots__ = ("record", "step", "task")

        def __init__(
            self, step: Callable[..., object], task: asyncio.Task[Any], record: TrackedResource
        ):
            self.step = step
            self.task = task
            self.record = record

        def __call__(self, *args: Any) -> None:
            step, task, record = self.step, self.task, self.record
            token = None if record.frame_in_context else current_frame.set(record)
            if _hooks.enabled.before:
                _hooks.emit_before(record.async_id)
            try:
                step(*args)
            finally:
                if task.done():
                    _task_finished_inside_step(record)
                elif _hooks.enabled.after:
                    _hooks.emit_after(record.async_id)
                if token is not None:
                    current_frame.reset(token)
                # As in Handle._run: no reference to the task from a frame that a
                # failing step's traceback keeps alive.
                self = step = task = args = None  # type: ignore[assignment]

        def __repr__(self) -> str:
            return repr(self.step)

else:
    # The same, compiled: uvloop calls them for every callback and step.
    TrackedCallback = speedups.TrackedCallback
    _TaskStep = speedups.TaskStep


def _uvloop_schedule(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    leading: tuple[Any, ...],
    callback: Any,
    args: tuple[Any, ...],
    context: Context | None,
    threadsafe: bool = False,
) -> Any:
    if args:
        _resolved(args[0])
    task = _task_of_step(callback)
    if task is not None:
        record = _task_record_for_step(task, context)
        if record is not None and _hooks.enabled.hooks:
            callback = _TaskStep(callback, task, record)
        return original(loop, *leading, callback, *args, context=context)
    if (
        not _hooks.enabled.hooks
        or type(callback) is TrackedCallback
        or _wrapping_would_hide(callback, checked=loop.get_debug())
    ):
        return original(loop, *leading, callback, *args, context=context)
    # uvloop's cancel cannot be wrapped, but it drops the callback, which
    # the record watches; its handles keep no cycle.
    record, context = _record_for(context, frame_inside=False)
    tracked = TrackedCallback(callback, record)
    ready = None
    if threadsafe:
        ready = tracked._ready = threading.Lock()
        ready.acquire()
    try:
        handle = original(loop, *leading, tracked, *args, context=context)
        record.attach(handle)
        record.watch(tracked)
    except BaseException:
        forget(record)
        raise
    finally:
        if ready is not None:
            ready.release()
    return handle


# -- readers, writers and signal handlers ---------------------------------------

# A callback registered once and run each time its file descriptor is ready
# or its signal arrives: one resource from add_* to remove_* (or to its
# replacement by another add_* for the same fd or signal, or to the loop's
# close), with before and after around every run.

_WATCHED_TYPES = {
    "add_reader": "Reader",
    "add_writer": "Writer",
    "add_signal_handler": "SignalHandler",
}
_REMOVERS = {
    "remove_reader": "add_reader",
    "remove_writer": "add_writer",
    "remove_signal_handler": "add_signal_handler",
}


def _stdlib_registered(loop: Any, method: str, key: Any) -> TrackedResource | None:
    """The record of what the stdlib loop has registered for ``key`` (it returns no handle)."""
    handle = _stdlib_registered_handle(loop, method, key)
    return None if handle is None else _handles.get(id(handle))


def _stdlib_registered_handle(loop: Any, method: str, key: Any) -> asyncio.Handle | None:
    if method == "add_signal_handler":
        handle: asyncio.Handle | None = loop._signal_handlers.get(key)
        return handle
    selector = loop._selector
    if selector is None:  # closed: the loop's own method says so
        return None
    try:
        reader, writer = selector.get_key(key).data
    except (KeyError, ValueError, TypeError):  # not registered, or not an fd
        return None
    return reader if method == "add_reader" else writer  # type: ignore[no-any-return]


def _stdlib_watcher(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def add(self: asyncio.AbstractEventLoop, key: Any, callback: Any, *args: Any) -> Any:
            previous = _stdlib_registered(self, method, key)
            if not _hooks.enabled.hooks or _passes_through(callback):
                result = original(self, key, callback, *args)
            else:
                result = _stdlib_register(original, self, method, key, callback, args)
            if previous is not None:
                end(previous)  # replaced (a signal's old handle is dropped, not cancelled)
            return result

        return add

    return make


def _stdlib_register(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    method: str,
    key: Any,
    callback: Any,
    args: tuple[Any, ...],
) -> Any:
    record = track()
    try:
        result = original(loop, key, callback, *args)
    except BaseException:
        forget(record)
        raise
    handle = _stdlib_registered_handle(loop, method, key)
    if handle is None:  # a loop class that keeps them elsewhere
        forget(record)
        return result
    # The handle's own context, with no frame set in it: Handle._run sets
    # the frame for each run, and the context holds no record.
    record.repeats = True
    record.context = handle._context  # type: ignore[attr-defined]
    record.file(_handles, handle)
    record.attach(handle, _WATCHED_TYPES[method])
    return result


def _stdlib_remover(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    added_by = _REMOVERS[method]

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def remove(self: asyncio.AbstractEventLoop, key: Any) -> Any:
            record = _stdlib_registered(self, added_by, key)
            result = original(self, key)
            if record is not None:
                end(record)
            return result

        return remove

    return make


# uvloop keeps its registrations in C: ours, per loop, by (add method, fd or signal).
_uvloop_registrations: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], TrackedResource]] = (
    weakref.WeakKeyDictionary()
)


def _registration_key(method: str, key: Any) -> tuple[str, int] | None:
    if isinstance(key, int):
        return method, key
    try:
        return method, int(key.fileno())
    except (AttributeError, TypeError, ValueError, OSError):
        return None  # the loop's own error follows


def _uvloop_end_registration(loop: Any, method: str, key: Any) -> None:
    registration = _registration_key(method, key)
    registrations = _uvloop_registrations.get(loop)
    if registration is not None and registrations:
        record = registrations.pop(registration, None)
        if record is not None:
            end(record)


def _uvloop_watcher(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    type_name = _WATCHED_TYPES[method]

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def add(self: asyncio.AbstractEventLoop, key: Any, callback: Any, *args: Any) -> Any:
            checked = method == "add_signal_handler" or self.get_debug()
            if not _hooks.enabled.hooks or _wrapping_would_hide(callback, checked=checked):
                result = original(self, key, callback, *args)
                _uvloop_end_registration(self, method, key)  # the one it replaced
                return result
            record = track()
            record.repeats = True
            tracked = TrackedCallback(callback, record)
            try:
                result = original(self, key, tracked, *args)
            except BaseException:
                forget(record)
                raise
            _uvloop_end_registration(self, method, key)
            registration = _registration_key(method, key)
            if registration is not None:
                _uvloop_registrations.setdefault(self, {})[registration] = record
            # uvloop returns no handle: the resource is our callback. uvloop
            # drops it when the loop closes, which ends the resource too.
            record.attach(tracked, type_name)
            return result

        return add

    return make


def _uvloop_remover(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    added_by = _REMOVERS[method]

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def remove(self: asyncio.AbstractEventLoop, key: Any) -> Any:
            result = original(self, key)
            _uvloop_end_registration(self, added_by, key)
            return result

        return remove

    return make


# -- executor jobs ---------------------------------------------------------------


class ExecutorJob:
    """The resource of one ``run_in_executor`` call; it runs in the worker.

    ``future`` is the asyncio future ``run_in_executor`` returned (None until
    it returned); ``func`` is the function submitted.
    """

    __slots__ = ("__weakref__", "func", "future", "record")

    def __init__(self, func: Callable[..., object], record: TrackedResource) -> None:
        self.func = func
        self.record = record
        self.future: asyncio.Future[Any] | None = None

    def __call__(self, *args: Any) -> Any:
        func = self.func
        context = _entered_context(func)
        if context is None:
            return self._run_scoped(func, args, {})
        # asyncio.to_thread submits partial(context.run, fn, ...): the ids must
        # be set inside that context, or entering it would hide them.
        assert isinstance(func, functools.partial)
        return context.run(self._run_scoped, func.args[0], (*func.args[1:], *args), func.keywords)

    def _run_scoped(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            return run_as(self.record, func, *args, **kwargs)
        finally:
            finish(self.record)

    def __reduce__(self) -> tuple[Callable[[T], T], tuple[Callable[..., object]]]:
        # A process pool pickles its jobs: the other process gets the bare
        # function, since events and ids belong to this one. Here the job is
        # then never called; its destroy comes when the pool lets go of it.
        return (_unwrapped, (self.func,))

    def __repr__(self) -> str:
        return f"<ExecutorJob {self.func!r} async_id={self.record.async_id}>"


def _unwrapped(func: T) -> T:
    return func


def _entered_context(func: object) -> Context | None:
    """The context ``func`` enters, when it is ``partial(context.run, fn, ...)``."""
    if type(func) is functools.partial and func.args:
        owner = getattr(func.func, "__self__", None)
        if type(owner) is Context and getattr(func.func, "__name__", None) == "run":
            return owner
    return None


def _tracked_run_in_executor(original: Callable[..., Any]) -> Callable[..., Any]:
    def run_in_executor(
        self: asyncio.AbstractEventLoop, executor: Any, func: Any, *args: Any
    ) -> Any:
        if (
            not _hooks.enabled.hooks
            or not callable(func)
            or is_coroutine(func)
            or inspect.iscoroutinefunction(func)
        ):
            return original(self, executor, func, *args)  # stranded, or the loop's own error
        record = track()
        record.context = copy_context()
        job = ExecutorJob(func, record)
        record.attach(job)
        try:
            future = original(self, executor, job, *args)
        except BaseException:
            finish(record)
            raise
        job.future = future
        return future

    return run_in_executor


# -- switching on and off ------------------------------------------------------

_COMMON_PATCHES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("create_task", _tracked_create_task),
    ("create_future", _tracked_create_future),
    ("run_in_executor", _tracked_run_in_executor),
)


Schedule = Callable[..., Any]  # _stdlib_schedule or _uvloop_schedule


def _scheduler(schedule: Schedule, *, timed: bool, threadsafe: bool = False) -> Any:
    """The maker of a replacement for call_soon/_threadsafe (``timed=False``) or call_later/at."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if timed:

            def schedule_at(
                self: asyncio.AbstractEventLoop,
                when: float,
                callback: Any,
                *args: Any,
                context: Context | None = None,
            ) -> Any:
                return schedule(original, self, (when,), callback, args, context)

            return schedule_at

        def schedule_now(
            self: asyncio.AbstractEventLoop,
            callback: Any,
            *args: Any,
            context: Context | None = None,
        ) -> Any:
            return schedule(original, self, (), callback, args, context, threadsafe)

        return schedule_now

    return make


def _scheduling_patches(schedule: Schedule) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    return (
        ("call_soon", _scheduler(schedule, timed=False)),
        ("call_soon_threadsafe", _scheduler(schedule, timed=False, threadsafe=True)),
        ("call_later", _scheduler(schedule, timed=True)),
        ("call_at", _scheduler(schedule, timed=True)),
    )


def loop_classes() -> list[type]:
    """The loop classes whose methods are patched: asyncio's base loop, and uvloop's."""
    classes: list[type] = [asyncio.BaseEventLoop]
    uvloop_class = _uvloop_class()
    if uvloop_class is not None:
        classes.append(uvloop_class)
    return classes


def _watcher_patches() -> list[tuple[type, str, Callable[[Any], Any]]]:
    """(class, method, maker) for add_reader & co, on the class that defines each."""
    from asyncio import selector_events

    selector_loop = selector_events.BaseSelectorEventLoop
    patches: list[tuple[type, str, Callable[[Any], Any]]] = [
        (selector_loop, "add_reader", _stdlib_watcher("add_reader")),
        (selector_loop, "add_writer", _stdlib_watcher("add_writer")),
        (selector_loop, "remove_reader", _stdlib_remover("remove_reader")),
        (selector_loop, "remove_writer", _stdlib_remover("remove_writer")),
    ]
    if sys.platform != "win32":
        from asyncio import unix_events

        # Patched where they are defined, once: subclasses inherit them.
        unix_loop = unix_events._UnixSelectorEventLoop
        patches.append((unix_loop, "add_signal_handler", _stdlib_watcher("add_signal_handler")))
        patches.append(
            (unix_loop, "remove_signal_handler", _stdlib_remover("remove_signal_handler"))
        )
    uvloop_class = _uvloop_class()
    if uvloop_class is not None:
        patches.extend((uvloop_class, name, _uvloop_watcher(name)) for name in _WATCHED_TYPES)
        patches.extend((uvloop_class, name, _uvloop_remover(name)) for name in _REMOVERS)
    return patches


def _uvloop_class() -> type | None:
    try:
        import uvloop
    except ImportError:
        return None
    # uvloop.Loop is a Python subclass of the C loop: its methods can be
    # shadowed on it, which the C type itself would refuse.
    return uvloop.Loop


def _compiled(
    replacement: Callable[[Any, Any], Any], make: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """``make``, with its result the slow path of the compiled ``replacement``."""
    return lambda original: replacement(original, make(original))


def _loop_patches(cls: type) -> dict[str, Callable[[Any], Any]]:
    """The replacements on a loop class, by name: compiled where the accelerator runs."""
    stdlib = cls is asyncio.BaseEventLoop
    patches = dict(
        (*_COMMON_PATCHES, *_scheduling_patches(_stdlib_schedule if stdlib else _uvloop_schedule))
    )
    if stdlib:
        patches["call_soon"] = _stdlib_call_soon
    if speedups is not None:
        # The common cases in C; every other case goes to the Python one.
        call_soon = speedups.TrackedCallSoon if stdlib else speedups.TrackedUvloopCallSoon
        patches["create_task"] = _compiled(speedups.TrackedCreateTask, patches["create_task"])
        patches["create_future"] = _compiled(speedups.TrackedCreateFuture, patches["create_future"])
        patches["call_soon"] = _compiled(call_soon, patches["call_soon"])
    return patches


def patch_asyncio() -> None:
    """Replace the resource-creating loop methods with tracking ones."""
    if _patches:
        return
    for cls in loop_classes():
        for name, make in _loop_patches(cls).items():
            _patches.apply(cls, name, make)
    for cls, name, make in _watcher_patches():
        _patches.apply(cls, name, make)
    handle_run: Callable[[Any], Any] = _tracked_handle_run
    if speedups is not None:
        handle_run = _compiled(speedups.TrackedHandleRun, handle_run)
    _patches.apply(asyncio.Handle, "_run", handle_run)
    _patches.apply(asyncio.Handle, "cancel", _tracked_handle_cancel)


def unpatch_asyncio() -> None:
    """Put every original loop method back (the identical objects)."""
    _patches.restore_all()


if speedups is not None:
    speedups.configure_tracking(
        tasks=_tasks,
        handles=_handles,
        futures=_futures,
        running_task=_running_task,
        task_type=asyncio.Task,
        handle_type=asyncio.Handle,
    )
