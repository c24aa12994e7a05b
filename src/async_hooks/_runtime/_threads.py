"""Lifecycle events for threads started while a hook is enabled.

A thread gets ``init`` (type: its class name, resource: the Thread object)
before it starts, ``before``/``after`` around its ``run()`` in the new
thread, and ``destroy`` when ``run()`` returned. Inside ``run()`` the
execution ids are the thread's, and its trigger is the code that started
it. ``Thread.start`` itself is replaced by ``async_hooks/_thread_start.py``,
which ``install()`` shares; this module only tells it what to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import _hooks, _thread_start
from ._live import TrackedResource, finish, run_as, track


class _ThreadLifecycle:
    """The events around one tracked thread's ``run()``."""

    __slots__ = ("record",)

    def __init__(self, record: TrackedResource) -> None:
        self.record = record

    def __call__(self, run: Callable[[], object], /) -> object:
        return run_as(self.record, run)

    def end(self) -> None:
        finish(self.record)


def _track_thread(thread: threading.Thread) -> _ThreadLifecycle | None:
    # Read again here: the last hook may be disabling in another thread.
    if not _hooks.enabled.hooks:
        return None
    record = track()
    record.attach(thread)
    return _ThreadLifecycle(record)


def patch_threads() -> None:
    _thread_start.set_tracker(_track_thread)


def unpatch_threads() -> None:
    _thread_start.set_tracker(None)
