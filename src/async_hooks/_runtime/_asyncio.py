"""Lifecycle events for asyncio's own resources, on the stdlib loop and on uvloop.

While a hook is enabled, the loop methods that create resources are
replaced on the loop *classes* (``asyncio.BaseEventLoop`` and, when it is
installed, ``uvloop.Loop``), so loops that already run are tracked too:

* ``create_task``: the coroutine is driven through :class:`TaskCoroutine`,
  which emits ``before``/``after`` around each step of the task, and
  ``promise_resolve`` + ``destroy`` when its last step ends. Every way of
  creating a task goes through ``loop.create_task`` (``asyncio.create_task``,
  ``ensure_future``, ``gather``, ``TaskGroup``, ``run_coroutine_threadsafe``),
  and an installed task factory, eager or not, is called by it, so the
  factory is chained, not replaced.
* ``create_future`` returns a :class:`TrackedFuture` (an ``asyncio.Future``
  whose repr and resource type still say "Future") whose
  ``set_result``/``set_exception``/``cancel`` emit ``promise_resolve`` and
  ``destroy``.
* ``call_soon``, ``call_soon_threadsafe``, ``call_later`` and ``call_at``
  wrap the callback in a :class:`TrackedCallback` that emits
  ``before``/``after`` around it and ``destroy`` after it.
* ``run_in_executor`` submits an :class:`ExecutorJob`.

Every resource's callbacks run with the resource's frame current, so
``execution_async_id()`` and friends name it there. All of it is undone,
to the identical original objects, when the last hook is disabled.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any, TypeVar

from .. import _hooks
from .._coroutines import CoroutineWrapper, is_coroutine
from .._execution import current_frame
from .._patching import Patches
from ._live import TrackedResource, finish, forget, run_as, track

T = TypeVar("T")

_patches = Patches()


# -- tasks ---------------------------------------------------------------------


class TaskCoroutine(CoroutineWrapper[T]):
    """The coroutine a tracked task drives: the user's, with events around each step.

    ``task.get_coro()`` returns this wrapper while tracking is on; it forwards
    every attribute it does not define (``cr_frame``, ``__qualname__``, ...)
    to the user's coroutine, which is also ``__wrapped__``, so the task's
    repr, ``get_stack()`` and debuggers see the user's code.
    """

    __slots__ = ("_record", "_sets_frame")

    def __init__(self, coro: Coroutine[Any, Any, T], record: TrackedResource, sets_frame: bool):
        super().__init__(coro)
        self._record = record
        # False when the task runs in a context of our own that already holds
        # the frame; True when it runs in a context we must not change.
        self._sets_frame = sets_frame

    def send(self, value: Any, /) -> Any:
        return self._step(self._coro.send, value)

    def throw_exception(self, error: BaseException, /) -> Any:
        return self._step(self._coro.throw, error)

    def close(self) -> None:
        self._coro.close()

    def _step(self, method: Callable[[Any], Any], argument: Any) -> Any:
        record = self._record
        if not record.initialized:
            # An eager task (3.12+): its first step runs inside the Task
            # constructor, before create_task could name the task. It is
            # already the current task, so init can still come first.
            record.attach(asyncio.current_task())
        token = current_frame.set(record) if self._sets_frame else None
        async_id = record.async_id
        if _hooks.enabled.before:
            _hooks.emit_before(async_id)
        try:
            result = method(argument)
        except BaseException:
            # The coroutine ended (returned, raised or was cancelled): the
            # task takes this outcome as its result right after this step.
            if _hooks.enabled.promise_resolve:
                _hooks.emit_promise_resolve(async_id)
            self._end_step(token)
            finish(record)
            raise
        self._end_step(token)
        return result

    def _end_step(self, token: Any) -> None:
        if _hooks.enabled.after:
            _hooks.emit_after(self._record.async_id)
        if token is not None:
            current_frame.reset(token)

    def __repr__(self) -> str:
        return repr(self._coro)


def _tracked_create_task(original: Callable[..., asyncio.Task[Any]]) -> Callable[..., Any]:
    def create_task(self: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        if not _hooks.enabled.hooks or not is_coroutine(coro) or type(coro) is TaskCoroutine:
            return original(self, coro, **kwargs)
        record = track()
        context: Context | None = kwargs.get("context")
        sets_frame = True
        if context is None and self.get_task_factory() is None:
            # A context of the task's own with its frame already inside: its
            # steps then see their ids with no work per step. (A factory may
            # not accept `context`, so with one installed the steps set it.)
            context = copy_context()
            context.run(current_frame.set, record)
            kwargs["context"] = context
            sets_frame = False
        wrapped = TaskCoroutine(coro, record, sets_frame)
        try:
            task = original(self, wrapped, **kwargs)
        except BaseException:
            if not record.initialized:
                forget(record)
            raise
        record.attach(task)
        if context is None:
            if sys.version_info >= (3, 12):
                context = task.get_context()
            else:
                # 3.11 does not expose a task's context: the creator's is
                # what a factory's task starts from.
                context = copy_context()
        record.context = context
        return task

    return create_task


# -- futures -------------------------------------------------------------------


class TrackedFuture(asyncio.Future[T]):
    """The future ``loop.create_future()`` returns while tracking.

    An ``asyncio.Future`` in every respect (``isinstance`` holds, its repr
    and its resource type are "Future", as for the futures it stands in
    for); resolving it emits ``promise_resolve`` then ``destroy``.
    """

    _async_hooks_record: TrackedResource | None = None

    def __repr__(self) -> str:
        # asyncio puts the class name in the repr: show the one users know.
        text = super().__repr__()
        if text.startswith(_OWN_REPR_PREFIX):
            return "<Future" + text[len(_OWN_REPR_PREFIX) :]
        return text

    def set_result(self, result: T, /) -> None:
        super().set_result(result)
        self._resolved()

    def set_exception(self, exception: type | BaseException, /) -> None:
        super().set_exception(exception)
        self._resolved()

    def cancel(self, msg: Any | None = None) -> bool:
        cancelled = super().cancel(msg)
        if cancelled:
            self._resolved()
        return cancelled

    def _resolved(self) -> None:
        record = self._async_hooks_record
        if record is None:
            return
        self._async_hooks_record = None
        if _hooks.enabled.promise_resolve:
            _hooks.emit_promise_resolve(record.async_id)
        finish(record)


_OWN_REPR_PREFIX = f"<{TrackedFuture.__name__}"


def _tracked_create_future(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_future(self: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        if not _hooks.enabled.hooks:
            return original(self)  # type: ignore[no-any-return]
        record = track()
        future: TrackedFuture[Any] = TrackedFuture(loop=self)
        future._async_hooks_record = record
        record.context = copy_context()
        record.attach(future, "Future")
        return future

    return create_future


# -- handles and timers --------------------------------------------------------

# The callbacks a task schedules to run its own steps: the task's before and
# after already cover them, so they are not resources of their own.
_TASK_STEP_NAMES = frozenset({"task_wakeup", "_Task__step", "_Task__wakeup", "__step", "__wakeup"})


def _is_task_step(callback: object) -> bool:
    if type(callback).__name__ == "TaskStepMethWrapper":
        return True
    return getattr(callback, "__name__", None) in _TASK_STEP_NAMES and isinstance(
        getattr(callback, "__self__", None), asyncio.Task
    )


class TrackedCallback:
    """The callback a tracked handle runs: the user's, between ``before`` and ``after``."""

    __slots__ = ("_ready", "callback", "record")

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
        try:
            run_as(self.record, self.callback, *args)
        finally:
            finish(self.record)

    def __repr__(self) -> str:
        return repr(self.callback)


def _schedule(
    original: Callable[..., Any],
    loop: asyncio.AbstractEventLoop,
    leading: tuple[Any, ...],
    callback: Any,
    args: tuple[Any, ...],
    context: Context | None,
    *,
    threadsafe: bool = False,
) -> Any:
    if (
        not _hooks.enabled.hooks
        or callback is _hooks.flush_pending_destroys
        or type(callback) is TrackedCallback
        or _is_task_step(callback)
        or not callable(callback)
    ):
        # Stranded (see async_hooks/_patching.py); the delivery of collected resources'
        # destroys, scheduled from inside the garbage collector where no
        # event may be emitted; already ours (call_later calls call_at); a
        # task's own step; or an error the loop reports in its own words.
        return original(loop, *leading, callback, *args, context=context)
    record = track()
    tracked = TrackedCallback(callback, record)
    if context is None:
        context = copy_context()
    record.context = context
    ready = None
    if threadsafe:
        ready = tracked._ready = threading.Lock()
        ready.acquire()
    try:
        handle = original(loop, *leading, tracked, *args, context=context)
        record.attach(handle)
    except BaseException:
        forget(record)
        raise
    finally:
        if ready is not None:
            ready.release()
    return handle


def _tracked_call_soon(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_soon(
        self: asyncio.AbstractEventLoop, callback: Any, *args: Any, context: Context | None = None
    ) -> Any:
        return _schedule(original, self, (), callback, args, context)

    return call_soon


def _tracked_call_soon_threadsafe(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_soon_threadsafe(
        self: asyncio.AbstractEventLoop, callback: Any, *args: Any, context: Context | None = None
    ) -> Any:
        return _schedule(original, self, (), callback, args, context, threadsafe=True)

    return call_soon_threadsafe


def _tracked_call_later(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_later(
        self: asyncio.AbstractEventLoop,
        delay: float,
        callback: Any,
        *args: Any,
        context: Context | None = None,
    ) -> Any:
        return _schedule(original, self, (delay,), callback, args, context)

    return call_later


def _tracked_call_at(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_at(
        self: asyncio.AbstractEventLoop,
        when: float,
        callback: Any,
        *args: Any,
        context: Context | None = None,
    ) -> Any:
        return _schedule(original, self, (when,), callback, args, context)

    return call_at


def _tracked_handle_cancel(original: Callable[[asyncio.Handle], None]) -> Callable[..., None]:
    # stdlib only: uvloop's Handle is a C type; there a cancelled handle's
    # destroy comes when the handle is collected.
    def cancel(self: asyncio.Handle) -> None:
        callback = self._callback  # type: ignore[attr-defined]
        original(self)
        if type(callback) is TrackedCallback and _hooks.enabled.hooks:
            finish(callback.record)

    return cancel


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

_LOOP_PATCHES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("create_task", _tracked_create_task),
    ("create_future", _tracked_create_future),
    ("call_soon", _tracked_call_soon),
    ("call_soon_threadsafe", _tracked_call_soon_threadsafe),
    ("call_later", _tracked_call_later),
    ("call_at", _tracked_call_at),
    ("run_in_executor", _tracked_run_in_executor),
)


def loop_classes() -> list[type]:
    """The loop classes whose methods are patched: asyncio's base loop, and uvloop's."""
    classes: list[type] = [asyncio.BaseEventLoop]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        # uvloop.Loop is a Python subclass of the C loop: its methods can be
        # shadowed on it, which the C type itself would refuse.
        classes.append(uvloop.Loop)
    return classes


def patch_asyncio() -> None:
    """Replace the resource-creating loop methods with tracking ones."""
    if _patches:
        return
    for cls in loop_classes():
        for name, make in _LOOP_PATCHES:
            _patches.apply(cls, name, make)
    _patches.apply(asyncio.Handle, "cancel", _tracked_handle_cancel)


def unpatch_asyncio() -> None:
    """Put every original loop method back (the identical objects)."""
    _patches.restore_all()
