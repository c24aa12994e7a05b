"""What keeps the program busy: Node's ``process.getActiveResourcesInfo()`` and more.

Two sources are merged:

* the resources runtime tracking follows while a hook is enabled (ids,
  trigger id, age, creation site, context), from
  the live-resource index of ``_runtime/_live.py``;
* what can be seen without any hook: the running loop's pending tasks, the
  stdlib loop's scheduled handles and timers, and live non-daemon threads.
  These have no ids (``async_id`` is None) since nobody tracked their birth.

See docs/diagnostics.md.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any

from ._policy import stores_in
from ._runtime._live import CreationSite, TrackedResource, live_resources
from ._storage import AsyncLocalStorage

# Tracked, but not something that keeps a program busy: Node leaves promises
# out of getActiveResourcesInfo() too.
_PASSIVE_TYPES = frozenset({"Future"})


@dataclass(frozen=True)
class ActiveResource:
    """One live resource, as a tool sees it."""

    #: The type string hooks received in ``init`` (the resource's class name).
    type: str
    #: The user's object (Task, Handle, Thread, ...); None once collected.
    resource: object | None
    #: Its async id; None for a resource created while no hook was enabled.
    async_id: int | None = None
    #: The execution id that created it; None when untracked.
    trigger_async_id: int | None = None
    #: Seconds since it was created; None when untracked.
    age: float | None = None
    #: The first frame outside asyncio/async_hooks that created it; None when untracked.
    creation_site: CreationSite | None = None
    #: The store of every live AsyncLocalStorage that has an entry in the
    #: resource's context (empty when the context cannot be read).
    stores: dict[AsyncLocalStorage[Any], object] = field(default_factory=dict)
    #: False for resources that do not keep a program busy (futures).
    keeps_busy: bool = True

    def stores_by_name(self) -> dict[str, object]:
        """``stores`` keyed by each storage's name (unnamed ones as ``''``; last wins)."""
        return {storage.name: value for storage, value in self.stores.items()}


def get_active_resources() -> list[ActiveResource]:
    """Every live resource that can be seen, tracked ones first (oldest first)."""
    found: list[ActiveResource] = []
    seen: set[int] = set()
    for record in sorted(live_resources.copy().values(), key=lambda r: r.async_id):
        resource = record.resource
        if resource is None or _finished(resource):
            continue
        seen.add(id(resource))
        found.append(
            ActiveResource(
                type=record.type,
                resource=resource,
                async_id=record.async_id,
                trigger_async_id=record.trigger_async_id,
                age=record.age,
                creation_site=record.creation_site,
                stores=_stores_of(_context_of(record, resource)),
                keeps_busy=record.type not in _PASSIVE_TYPES,
            )
        )
    for resource, context in _untracked():
        if id(resource) not in seen:
            found.append(
                ActiveResource(
                    type=type(resource).__name__, resource=resource, stores=_stores_of(context)
                )
            )
    return found


def get_active_resources_info() -> list[str]:
    """The type names of what keeps the program busy, as Node returns them.

    Pending tasks, scheduled handles and timers, pending executor jobs, open
    servers and transports, live non-daemon threads. With a hook enabled,
    everything tracking follows, on uvloop too; without one, only tasks,
    the stdlib loop's handles and timers, and threads can be seen.
    """
    return [active.type for active in get_active_resources() if active.keeps_busy]


def _finished(resource: object) -> bool:
    # A cancelled uvloop handle stays tracked until collected; a done task
    # between its last step and its destroy is not busy either.
    if isinstance(resource, asyncio.Future):
        return resource.done()
    cancelled = getattr(resource, "cancelled", None)
    if callable(cancelled) and isinstance(resource, (asyncio.Handle, *_uvloop_handle_types())):
        return bool(cancelled())
    # Transports and servers, asyncio's or uvloop's (which do not register
    # as asyncio's ABCs): known by the methods they share.
    is_closing = getattr(resource, "is_closing", None)
    if callable(is_closing):
        return bool(is_closing())
    is_serving = getattr(resource, "is_serving", None)
    if callable(is_serving):
        return not is_serving()
    if isinstance(resource, threading.Thread):
        # A thread has an ident from its start on: alive, or started and finished.
        return resource.ident is not None and not resource.is_alive()
    return False


def _uvloop_handle_types() -> tuple[type, ...]:
    uvloop_loop = sys.modules.get("uvloop.loop")
    if uvloop_loop is None:
        return ()
    return (uvloop_loop.Handle, uvloop_loop.TimerHandle)


def _context_of(record: TrackedResource, resource: object) -> Context | None:
    if record.context is not None:
        return record.context
    if isinstance(resource, asyncio.Task):
        return _task_context(resource)
    return None


def _task_context(task: asyncio.Task[Any]) -> Context | None:
    if sys.version_info >= (3, 12):
        return task.get_context()
    return None  # 3.11 does not expose a task's context


def _stores_of(context: Context | None) -> dict[AsyncLocalStorage[Any], object]:
    if context is None:
        return {}
    return stores_in(context)


def _untracked() -> Iterator[tuple[object, Context | None]]:
    """What can be seen without hooks, with its context when readable."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            yield task, _task_context(task)
        yield from _stdlib_handles(loop)
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon and thread.is_alive():
            yield thread, None


def _stdlib_handles(loop: asyncio.AbstractEventLoop) -> Iterator[tuple[object, Context | None]]:
    # The stdlib loop keeps its queues in plain attributes; uvloop keeps them in C.
    ready = getattr(loop, "_ready", None)
    scheduled = getattr(loop, "_scheduled", None)
    if ready is None or scheduled is None:
        return
    for handle in (*list(ready), *list(scheduled)):
        if not isinstance(handle, asyncio.Handle) or handle.cancelled():
            continue
        callback = getattr(handle, "_callback", None)
        if isinstance(getattr(callback, "__self__", None), asyncio.Task):
            continue  # a task's own next step: the task is listed already
        yield handle, getattr(handle, "_context", None)
