"""Lifecycle hooks: ``create_hook``, ``AsyncHook`` and the dispatch of events.

Emitters (AsyncResource here, runtime tracking elsewhere) read the tuple of
callbacks for an event from :data:`enabled` and call ``emit_*`` only when it
is not empty, so an event nobody listens to costs one attribute read.

Dispatch rules (docs/semantics.md, "Hooks"):

* callbacks run in the order their hooks were enabled;
* a callback that raises is reported through ``sys.unraisablehook``; the
  other callbacks and the user's code go on, and the hook stays enabled;
* ``enable()``/``disable()`` called while this thread is inside a dispatch
  take effect when its outermost dispatch ends (the thread's stack tells,
  so the dispatch itself keeps no counter);
* callbacks run in a copy of the current context, so a callback that enters
  a store cannot change the context of the code that triggered the event;
* ``destroy`` caused by garbage collection is queued, never delivered from
  inside the collector, and flushed before the next event, on the next loop
  iteration, or at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import copy_context
from operator import attrgetter
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, Self

from ._accelerator import speedups
from ._unraisable import report_unraisable
from ._validation import describe
from .errors import InvalidArgTypeError, InvalidArgValueError, InvalidAsyncCallbackError

EVENTS = ("init", "before", "after", "destroy", "promise_resolve")

# Node's names, so that a callbacks object ported from Node gets a precise error.
_NODE_NAMES = {"promiseResolve": "promise_resolve"}

InitCallback = Callable[[int, str, int, object], object]
IdCallback = Callable[[int], object]


class HookCallbacks(Protocol):
    """Any of these, as methods or mapping keys, may be given to ``create_hook``."""

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> object: ...

    def before(self, async_id: int) -> object: ...

    def after(self, async_id: int) -> object: ...

    def destroy(self, async_id: int) -> object: ...

    def promise_resolve(self, async_id: int) -> object: ...


class _EnabledCallbacks:
    """The enabled callbacks of each event, in enable order.

    Each field is an immutable tuple replaced as a whole on change, so a
    dispatch iterating over one never sees it move.
    """

    __slots__ = (
        "after",
        "before",
        "creation_sites",
        "destroy",
        "hooks",
        "init",
        "promise_resolve",
        "scope_events",
        "sites_asked",
    )

    def __init__(self) -> None:
        self.hooks: tuple[AsyncHook, ...] = ()
        self.init: tuple[InitCallback, ...] = ()
        self.before: tuple[IdCallback, ...] = ()
        self.after: tuple[IdCallback, ...] = ()
        self.destroy: tuple[IdCallback, ...] = ()
        self.promise_resolve: tuple[IdCallback, ...] = ()
        # before or after: the one test a resource scope makes on every call.
        self.scope_events = False
        # Whether runtime tracking records where each resource was created: a
        # frame walk per resource, paid only while someone shows the sites (an
        # enabled hook made with creation_sites=True: the diagnostics tools)
        # or asked for them (record_creation_sites()).
        self.creation_sites = False
        self.sites_asked = False

    def rebuild(self, hooks: tuple[AsyncHook, ...]) -> None:
        self.hooks = hooks
        self.creation_sites = self.sites_asked or any(hook._creation_sites for hook in hooks)
        for event in EVENTS:
            callbacks = tuple(
                callback for hook in hooks if (callback := hook._callbacks[event]) is not None
            )
            setattr(self, event, callbacks)
        self.scope_events = bool(self.before or self.after)
        if speedups is not None:
            speedups.set_enabled_callbacks(
                init=self.init,
                before=self.before,
                after=self.after,
                destroy=self.destroy,
                promise_resolve=self.promise_resolve,
                any_hook=bool(hooks),
                creation_sites=self.creation_sites,
            )


enabled = _EnabledCallbacks()
_change_lock = threading.RLock()
_activation_listeners: list[Callable[[bool], None]] = []


class _DispatchState(threading.local):
    def __init__(self) -> None:
        # Hook changes made inside this thread's dispatch, applied when it ends.
        self.deferred: list[tuple[AsyncHook, bool]] = []
        # > 0 while this thread is inside queue_destroy (a GC callback).
        self.queueing = 0


_dispatch_state = _DispatchState()
# How many threads have deferred changes waiting: the one test a dispatch
# makes for them, so that the common case touches no thread-local state.
_threads_with_deferred_changes = 0


class AsyncHook:
    """A set of lifecycle callbacks that can be enabled and disabled.

    Create one with :func:`create_hook`.
    """

    __slots__ = ("_callbacks", "_creation_sites")

    def __init__(
        self,
        callbacks: Mapping[str, Callable[..., object] | None],
        *,
        creation_sites: bool = False,
    ) -> None:
        self._callbacks = {event: callbacks.get(event) for event in EVENTS}
        # The diagnostics tools' hooks show creation sites: while one is
        # enabled, runtime tracking records them.
        self._creation_sites = creation_sites

    @property
    def enabled(self) -> bool:
        return self in enabled.hooks

    def enable(self) -> Self:
        """Start delivering events to this hook. Idempotent; returns the hook."""
        _change(self, enable=True)
        return self

    def disable(self) -> Self:
        """Stop delivering events to this hook. Idempotent; returns the hook."""
        _change(self, enable=False)
        return self

    def __repr__(self) -> str:
        given = ", ".join(event for event, cb in self._callbacks.items() if cb is not None)
        state = "enabled" if self.enabled else "disabled"
        return f"<AsyncHook {state} ({given or 'no callbacks'})>"


def create_hook(
    callbacks: HookCallbacks | Mapping[str, Any] | object | None = None,
    /,
    *,
    init: InitCallback | None = None,
    before: IdCallback | None = None,
    after: IdCallback | None = None,
    destroy: IdCallback | None = None,
    promise_resolve: IdCallback | None = None,
) -> AsyncHook:
    """Create a (disabled) hook from keyword callbacks or from an object.

    The object form accepts a mapping with the event names as keys, or any
    object with them as methods (inherited ones included, as in Node).
    """
    keywords = {
        "init": init,
        "before": before,
        "after": after,
        "destroy": destroy,
        "promise_resolve": promise_resolve,
    }
    if callbacks is None:
        found: dict[str, Any] = keywords
    elif any(value is not None for value in keywords.values()):
        raise InvalidArgTypeError(
            "create_hook() takes its callbacks either as one object or as keywords, not both"
        )
    elif isinstance(callbacks, Mapping):
        found = _callbacks_from_mapping(callbacks)
    else:
        found = _callbacks_from_object(callbacks)
    for event, callback in found.items():
        if callback is not None and not callable(callback):
            raise InvalidAsyncCallbackError(f"hook.{event} must be a function")
    return AsyncHook(found)


def _callbacks_from_mapping(callbacks: Mapping[str, Any]) -> dict[str, Any]:
    for key in callbacks:
        if key not in EVENTS:
            hint = f"; did you mean {_NODE_NAMES[key]!r}?" if key in _NODE_NAMES else ""
            raise InvalidArgValueError(
                f"create_hook() got an unknown callback {key!r}{hint} (known: {', '.join(EVENTS)})"
            )
    return {event: callbacks.get(event) for event in EVENTS}


def _callbacks_from_object(callbacks: object) -> dict[str, Any]:
    for node_name, python_name in _NODE_NAMES.items():
        if hasattr(callbacks, node_name) and not hasattr(callbacks, python_name):
            raise InvalidArgValueError(
                f"create_hook() got an object with {node_name!r}; "
                f"the Python name is {python_name!r}"
            )
    return {event: getattr(callbacks, event, None) for event in EVENTS}


def _change(hook: AsyncHook, *, enable: bool) -> None:
    global _threads_with_deferred_changes
    if _inside_dispatch():
        state = _dispatch_state
        if not state.deferred:
            with _change_lock:
                _threads_with_deferred_changes += 1
                if speedups is not None:
                    speedups.set_deferred_changes_waiting(True)
        state.deferred.append((hook, enable))
        return
    _apply_change(hook, enable=enable)


def _apply_change(hook: AsyncHook, *, enable: bool) -> None:
    with _change_lock:
        was_active = bool(enabled.hooks)
        if enable and hook not in enabled.hooks:
            enabled.rebuild((*enabled.hooks, hook))
        elif not enable and hook in enabled.hooks:
            enabled.rebuild(tuple(h for h in enabled.hooks if h is not hook))
        now_active = bool(enabled.hooks)
    if was_active != now_active:
        for listener in tuple(_activation_listeners):
            listener(now_active)


def record_creation_sites(on: bool = True, /) -> None:
    """Record (or stop recording) where each runtime resource is created, from now on.

    Off by default: finding the first frame outside asyncio and async_hooks
    is a walk up the stack for every task, future and handle. The tools of
    ``async_hooks.diagnostics`` that show sites (``TraceWriter``,
    ``ResourceHistory``, ``StallDetector``, the live view and ``python -m
    async_hooks run``) turn it on while they run; this is for code that reads
    ``ActiveResource.creation_site`` from ``get_active_resources()`` itself.
    """
    if not isinstance(on, bool):
        raise InvalidArgTypeError(
            f'The "on" argument must be of type bool. Received {describe(on)}'
        )
    with _change_lock:
        enabled.sites_asked = on
        enabled.rebuild(enabled.hooks)


def add_activation_listener(listener: Callable[[bool], None]) -> None:
    """Call ``listener(True)`` when the first hook is enabled, ``(False)`` after the last.

    Runtime tracking uses this to patch only while someone listens.
    """
    _activation_listeners.append(listener)


def remove_activation_listener(listener: Callable[[bool], None]) -> None:
    _activation_listeners.remove(listener)


# The pure-Python emitters: one Python frame per event, the emitter's own.
# Each takes its arguments by name, not as *args: unpacking a tuple into
# every callback's call costs more than the rest of the dispatch.


def _id_event_emitter(event: str) -> Callable[[int], None]:
    """The emitter of an event whose callbacks take the async id alone."""
    callbacks_of = attrgetter(event)
    message = f"Exception ignored in async_hooks {event} hook"
    # A destroy is what a flush delivers: it does not flush first.
    flushes = event != "destroy"

    def emit(async_id: int) -> None:
        callbacks: tuple[IdCallback, ...] = callbacks_of(enabled)
        if not callbacks:
            return
        if pending_destroys and flushes:
            flush_pending_destroys()
        # One copy for the whole event: a callback that enters a store changes
        # neither the code that caused the event nor the next event.
        context = copy_context()
        for callback in callbacks:
            try:
                context.run(callback, async_id)
            except Exception as error:
                report_unraisable(error, message, callback)
        if _threads_with_deferred_changes:
            _apply_deferred_changes()

    return emit


def _emit_init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
    # The id events' emitter, with init's four arguments.
    callbacks = enabled.init
    if not callbacks:
        return
    if pending_destroys:
        flush_pending_destroys()
    context = copy_context()
    for callback in callbacks:
        try:
            context.run(callback, async_id, type, trigger_async_id, resource)
        except Exception as error:
            report_unraisable(error, "Exception ignored in async_hooks init hook", callback)
    if _threads_with_deferred_changes:
        _apply_deferred_changes()


# An emitter's frame on a thread's stack is what marks that thread as
# "inside a dispatch" (_inside_dispatch).
_DISPATCH_CODES = frozenset({_emit_init.__code__, _id_event_emitter("before").__code__})


def _inside_dispatch(frames_up: int = 1) -> bool:
    """Whether this thread is running hook callbacks (at any depth below them).

    Read from the stack only when a hook is enabled or disabled, so that the
    dispatch itself keeps no depth counter (the compiled one keeps it in C).
    The stack is read from ``frames_up`` frames above the caller's.
    """
    if speedups is not None:
        return bool(speedups.dispatching())
    frame: FrameType | None = sys._getframe(frames_up)
    while frame is not None:
        if frame.f_code in _DISPATCH_CODES:
            return True
        frame = frame.f_back
    return False


def _apply_deferred_changes() -> None:
    """Apply this thread's deferred hook changes if its outermost dispatch just ended."""
    global _threads_with_deferred_changes
    state = _dispatch_state
    # Above this frame is the dispatch that just ended: whether it was the
    # outermost one is read from its caller's frame up.
    if not state.deferred or _inside_dispatch(frames_up=3):
        return
    deferred, state.deferred = state.deferred, []
    with _change_lock:
        _threads_with_deferred_changes -= 1
        if speedups is not None:
            speedups.set_deferred_changes_waiting(_threads_with_deferred_changes > 0)
    for hook, enable in deferred:
        # Applied as they are: the ending dispatch's frame is still on the
        # stack, where _change would take it for one still running.
        _apply_change(hook, enable=enable)


# The emitters. Callers on hot paths test ``enabled.<event>`` first, so that
# an event nobody listens to costs one attribute read and no call.


if TYPE_CHECKING:

    def emit_init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None: ...
    def emit_before(async_id: int) -> None: ...
    def emit_after(async_id: int) -> None: ...
    def emit_destroy(async_id: int) -> None: ...
    def emit_promise_resolve(async_id: int) -> None: ...

elif speedups is None:
    emit_init = _emit_init
    emit_before = _id_event_emitter("before")
    emit_after = _id_event_emitter("after")
    emit_destroy = _id_event_emitter("destroy")
    emit_promise_resolve = _id_event_emitter("promise_resolve")

else:
    # The same rules, with no Python frame between the emitter and the
    # callbacks (docs/accelerator.md).
    emit_init = speedups.emit_init
    emit_before = speedups.emit_before
    emit_after = speedups.emit_after
    emit_destroy = speedups.emit_destroy
    emit_promise_resolve = speedups.emit_promise_resolve


# -- destroy events caused by garbage collection --------------------------------

pending_destroys: deque[int] = deque()
# The loop a flush is scheduled on, if any. A plain global, not a lock-based
# flag: a GC callback can interrupt this very thread while it holds any lock.
# Remembering the loop (not just "scheduled") means a loop closed before its
# flush ran does not stop the next loop from scheduling one.
_flush_loop: asyncio.AbstractEventLoop | None = None


def queue_destroy(async_id: int) -> None:
    """Queue a destroy event; safe to call from a weakref or GC callback.

    Only appends and schedules: no user callback runs here.
    """
    global _flush_loop
    pending_destroys.append(async_id)
    loop = asyncio._get_running_loop()
    if loop is None or loop is _flush_loop or loop.is_closed():
        return
    _flush_loop = loop
    # A patched loop (runtime tracking) emits events while scheduling, and
    # events flush the queue: flush_pending_destroys must refuse until we return.
    state = _dispatch_state
    state.queueing += 1
    try:
        loop.call_soon_threadsafe(flush_pending_destroys)
    except RuntimeError:
        _flush_loop = None
    finally:
        state.queueing -= 1


def flush_pending_destroys() -> None:
    """Deliver queued destroy events now (called outside any GC callback)."""
    global _flush_loop
    if _dispatch_state.queueing:
        return  # inside a GC callback: the flush just scheduled delivers them
    _flush_loop = None
    while pending_destroys:
        try:
            async_id = pending_destroys.popleft()
        except IndexError:
            return
        emit_destroy(async_id)


atexit.register(flush_pending_destroys)

if speedups is not None:
    speedups.configure_dispatch(
        pending_destroys=pending_destroys,
        flush_pending_destroys=flush_pending_destroys,
        report_unraisable=report_unraisable,
        apply_deferred_changes=_apply_deferred_changes,
    )
