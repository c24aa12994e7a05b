"""The live runtime resources: one record per tracked resource until its destroy.

A record is the resource's :class:`~async_hooks._execution.ExecutionFrame`
itself (ids and resource), extended with what tools ask about it: its type,
when and where it was created, and the context it runs in. Being the frame,
it is what ``execution_async_id()`` reads inside the resource's callbacks,
so tracking a resource costs one object, not two.

Destroy is delivered exactly once: whoever removes the record from
:data:`live_resources` first (the end of its last callback, a cancel, or the garbage
collection of the resource) emits it; everyone else finds it gone.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable
from contextvars import Context
from types import CodeType, FrameType
from typing import Any, TypeVar

from .. import _hooks
from .._accelerator import speedups
from .._execution import ExecutionFrame, current_frame, next_async_id

T = TypeVar("T")

#: Every tracked resource not yet destroyed, by async id.
live_resources: dict[int, TrackedResource] = {}

# Frames of these directories are the machinery, not the code that asked for a
# resource: the creation site is the first frame outside them.
_MACHINERY_DIRS: tuple[str, ...] = ()

# Whether each file seen so far is machinery: one dict lookup per frame (a
# str caches its hash) instead of comparing it with every directory.
_is_machinery: dict[str, bool] = {}


def _machinery_dirs() -> tuple[str, ...]:
    import asyncio
    import importlib.util
    import os
    import threading

    dirs = {os.path.dirname(asyncio.__file__), os.path.dirname(os.path.dirname(__file__))}
    dirs.add(threading.__file__)
    for name in ("uvloop", "trio"):
        # Found without importing: trio may be imported after the first lookup.
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            dirs.add(os.path.dirname(spec.origin))
    return tuple(dirs)


class CreationSite:
    """Where a resource was created: the first frame outside asyncio and async_hooks.

    Kept as the code object and line, and formatted only when asked, so that
    tracking does not pay for strings nobody reads.
    """

    __slots__ = ("_code", "lineno")

    def __init__(self, code: CodeType, lineno: int) -> None:
        self._code = code
        self.lineno = lineno

    @property
    def filename(self) -> str:
        return self._code.co_filename

    @property
    def function(self) -> str:
        return self._code.co_name

    def __repr__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}"


def _creation_site() -> CreationSite | None:
    # Called from TrackedResource.__init__, itself called by track(): start
    # at track()'s caller, which is already in the machinery.
    frame: FrameType | None = sys._getframe(3)
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        machinery = _is_machinery.get(filename)
        if machinery is None:
            machinery = _is_machinery[filename] = _in_machinery(filename)
        if not machinery:
            return CreationSite(code, frame.f_lineno)
        frame = frame.f_back
    return None


def _in_machinery(filename: str) -> bool:
    global _MACHINERY_DIRS
    if not _MACHINERY_DIRS:
        _MACHINERY_DIRS = _machinery_dirs()
    return filename.startswith(_MACHINERY_DIRS)


class _ResourceRef(weakref.ref[object]):
    """A weak reference that knows whose resource it is, for its callback."""

    __slots__ = ("async_id",)
    async_id: int


def _collected(ref: _ResourceRef) -> None:
    # Most objects are collected after their resource ended: nothing to do.
    if ref.async_id in live_resources:
        _resource_collected(ref.async_id)


def _resource_collected(async_id: int) -> None:
    # Runs in the collector or a dealloc: only queue, never dispatch here.
    record = live_resources.get(async_id)
    if record is not None and current_frame.get() is record:
        # Its object went while its own callback runs (a transport replaced
        # by start_tls): the end of that run finishes it, after its `after`.
        record.repeats = False
        return
    record = live_resources.pop(async_id, None)
    if record is not None:
        record.unfile()
        # A context with the record as its frame (a task's, a handle's) and
        # the record holding it make a cycle: broken here as finish() does.
        record.context = None
        if _hooks.enabled.destroy:
            _hooks.queue_destroy(async_id)


def _no_resource() -> None:
    return None


class TrackedResource(ExecutionFrame):
    """A runtime resource being tracked: its frame plus what tools want to know."""

    __slots__ = (
        "context",
        "created_at",
        "creation_site",
        "filed_as",
        "filed_in",
        "frame_in_context",
        "holder",
        "initialized",
        "repeats",
        "type",
    )

    def __init__(
        self,
        context: Context | None = None,
        trigger_async_id: int | None = None,
        resource: Callable[[], object] = _no_resource,
    ) -> None:
        # Not ExecutionFrame.__init__: the resource does not exist yet. Until
        # attach() names its object, self.resource asks ``resource()``.
        self.async_id = next_async_id()
        if trigger_async_id is None:
            trigger_async_id = current_frame.get().async_id
        self.trigger_async_id = trigger_async_id
        self._resource = resource
        # Known once the resource exists: the class name of the user's object.
        self.type = ""
        self.context = context
        self.created_at = time.monotonic()
        self.creation_site = _creation_site() if _hooks.enabled.creation_sites else None
        # False until init was emitted: a callback of a resource whose init
        # is still on its way (another thread, an eager task) emits it first.
        self.initialized = False
        # True when the context the resource's callbacks run in already holds
        # this record as its frame, so that running them needs no frame switch.
        self.frame_in_context = False
        # An index that finds this record from its object (see file()).
        self.filed_in: dict[int, TrackedResource] | None = None
        self.filed_as = 0
        # True for a resource whose callbacks run again and again (a reader,
        # a signal handler, a transport): a run does not end it, its removal
        # does. end() from inside its own run sets it back to False, and the
        # end of that run then finishes the resource.
        self.repeats = False
        self.holder: _ResourceRef | None = None

    def attach(self, resource: object, type_name: str | None = None, *, emit: bool = True) -> None:
        """Name the user's object of this resource and emit ``init`` for it.

        The type is the object's class name unless ``type_name`` is given.
        ``emit=False`` is for a resource born while no hook listened: it is
        listed from now on, but gets no ``init`` (as in Node).

        The object is held weakly: when it is collected before it finished
        (a task the loop never ran, a future nobody resolved), its destroy
        is queued then.
        """
        if self.initialized:
            return
        self.type = type_name or type(resource).__name__
        try:
            ref = _ResourceRef(resource, _collected)
        except TypeError:
            self._resource = lambda: resource
        else:
            ref.async_id = self.async_id
            self._resource = ref
        self.initialized = True
        if emit and _hooks.enabled.init:
            _hooks.emit_init(self.async_id, self.type, self.trigger_async_id, resource)

    def watch(self, holder: object) -> None:
        """Also end the resource when ``holder`` is collected.

        For what a loop lets go of when the resource is cancelled or removed
        while the user may still hold the resource itself: uvloop drops a
        handle's callback at ``cancel()``, and that callback is ours.
        """
        ref = _ResourceRef(holder, _collected)
        ref.async_id = self.async_id
        self.holder = ref

    def file(self, index: dict[int, TrackedResource], obj: object) -> None:
        """Make ``index[id(obj)]`` this record until the resource finishes or is collected.

        For objects that cannot carry a reference to their record (asyncio's
        handles, tasks and futures stay exactly as asyncio made them). An id
        is safe as a key: the entry goes before the object is freed, and so
        before its id can be given to another object.
        """
        self.filed_in = index
        self.filed_as = id(obj)
        index[self.filed_as] = self

    def unfile(self) -> None:
        """Take this record out of the index it was filed in, if any."""
        index = self.filed_in
        if index is not None:
            self.filed_in = None
            if index.get(self.filed_as) is self:
                del index[self.filed_as]

    @property
    def age(self) -> float:
        """Seconds since the resource was created."""
        return time.monotonic() - self.created_at

    def __repr__(self) -> str:
        return (
            f"<TrackedResource {self.type} async_id={self.async_id} "
            f"trigger_async_id={self.trigger_async_id}>"
        )


def record_in(context: Context | None, obj: object) -> TrackedResource | None:
    """The live record of ``obj`` whose frame ``context`` holds, else None.

    A task or handle made with a context of its own (the common case) runs
    in a context that holds its record as the frame: the compiled tracking
    finds such records this way rather than filing them by id. Other
    handles may run in a task's context, hence the check of whose it is.
    """
    if context is None:
        return None
    record = context.get(current_frame)
    if type(record) is TrackedResource and record.context is context and record.resource is obj:
        return record
    return None


def track(
    context: Context | None = None,
    trigger_async_id: int | None = None,
    resource: Callable[[], object] = _no_resource,
) -> TrackedResource:
    """Start tracking a new resource; :meth:`TrackedResource.attach` emits its init.

    The trigger is the current execution unless ``trigger_async_id`` is given.
    Until attach() names the resource's object, ``record.resource`` is what
    ``resource()`` returns.
    """
    if _hooks.pending_destroys:
        _hooks.flush_pending_destroys()
    record = TrackedResource(context, trigger_async_id, resource)
    live_resources[record.async_id] = record
    return record


def finish(record: TrackedResource) -> None:
    """The resource is done: emit its destroy, once."""
    # A task's own context holds its record as the current frame: letting go
    # of the context here breaks that cycle, so a finished task is freed by
    # reference counting rather than left for the cyclic collector.
    record.context = None
    record.holder = None  # its collection has nothing left to end
    if live_resources.pop(record.async_id, None) is not None:
        if record.filed_in is not None:
            record.unfile()
        if _hooks.enabled.destroy:
            _hooks.emit_destroy(record.async_id)


def end(record: TrackedResource) -> None:
    """Finish ``record`` now, or, from inside its own callback, when that run returns.

    A destroy never comes inside the resource's own before/after (a handle
    that cancels itself, a reader removed by its own callback, a transport
    closed from one of its callbacks): whoever runs the resource's
    callbacks finishes it after a run once ``repeats`` is False.
    """
    if current_frame.get() is record:
        record.repeats = False
    else:
        finish(record)


def run_as(record: TrackedResource, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` as the resource's code: its frame current, between ``before`` and ``after``."""
    token = current_frame.set(record)
    try:
        if _hooks.enabled.before:
            _hooks.emit_before(record.async_id)
        try:
            return fn(*args, **kwargs)
        finally:
            if _hooks.enabled.after:
                _hooks.emit_after(record.async_id)
    finally:
        current_frame.reset(token)


def forget(record: TrackedResource) -> None:
    """The resource was never created after all (its constructor raised): no events."""
    live_resources.pop(record.async_id, None)
    record.unfile()


if speedups is not None:
    # The compiled tracking of asyncio's common cases (_runtime/_asyncio.py)
    # makes and ends records as this module does, in C.
    speedups.configure_records(
        record_type=TrackedResource,
        live_resources=live_resources,
        resource_ref_type=_ResourceRef,
        resource_collected=_resource_collected,
        no_resource=_no_resource,
    )
