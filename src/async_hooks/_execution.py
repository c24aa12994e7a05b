"""Async ids and the execution scope: which resource's code is running now.

The current scope is an :class:`ExecutionFrame` kept in a ContextVar, and
every resource keeps its frame inside the context it captured. Entering that
context (``Context.run``) is therefore all it takes to switch
``execution_async_id()``: no stack to push and pop, nothing to restore when
an exception escapes, and correct across threads and interleaved tasks.

A consequence worth knowing: without runtime tracking, a task or callback
created inside a resource's scope inherits that scope's frame with the
context, so it reports the creating resource's ids. With a hook enabled,
runtime tracking gives each task and callback a frame of its own.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from contextvars import ContextVar

# 1 is the top level (Node's bootstrap) and 0 means "no trigger".
TOP_LEVEL_ASYNC_ID = 1
_async_ids = itertools.count(TOP_LEVEL_ASYNC_ID + 1)


def new_async_id() -> int:
    """A fresh async id: strictly increasing, never reused, thread-safe."""
    # itertools.count.__next__ is a single C call, atomic under the GIL.
    return next(_async_ids)


# The same, as the counter's own C method: what compiled code calls (no
# Python frame in between).
next_async_id = _async_ids.__next__


class TopLevelResource:
    """The resource of the top-level execution (Node returns ``{}`` there).

    Tools may keep their own attributes on it, as Node's documentation does
    with ``executionAsyncResource()[sym] = ...``.
    """

    def __repr__(self) -> str:
        return "<async_hooks top-level resource>"


TOP_LEVEL_RESOURCE = TopLevelResource()


class ExecutionFrame:
    """The ids and resource of one execution scope.

    The resource is held weakly when it can be, so that a context copied
    inside the scope (by every task created there) does not keep the
    resource alive and delay its destroy event.
    """

    __slots__ = ("_resource", "async_id", "trigger_async_id")

    def __init__(self, async_id: int, trigger_async_id: int, resource: object) -> None:
        self.async_id = async_id
        self.trigger_async_id = trigger_async_id
        try:
            self._resource: Callable[[], object | None] = weakref.ref(resource)
        except TypeError:
            self._resource = lambda: resource

    @property
    def resource(self) -> object | None:
        return self._resource()

    def __repr__(self) -> str:
        return (
            f"<ExecutionFrame async_id={self.async_id} "
            f"trigger_async_id={self.trigger_async_id} resource={self.resource!r}>"
        )


TOP_LEVEL_FRAME = ExecutionFrame(TOP_LEVEL_ASYNC_ID, 0, TOP_LEVEL_RESOURCE)

current_frame: ContextVar[ExecutionFrame] = ContextVar(
    "async_hooks.execution_frame", default=TOP_LEVEL_FRAME
)


def execution_async_id() -> int:
    """The async id of the resource whose code is running (1 at top level)."""
    return current_frame.get().async_id


def trigger_async_id() -> int:
    """The id of the resource that caused the running code to be scheduled (0 at top level)."""
    return current_frame.get().trigger_async_id


def execution_async_resource() -> object:
    """The resource whose code is running; a fixed object at top level."""
    resource = current_frame.get().resource
    return TOP_LEVEL_RESOURCE if resource is None else resource
