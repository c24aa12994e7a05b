"""Lifecycle events for threads started while a hook is enabled.

``threading.Thread.start`` is replaced while tracking: the thread gets
``init`` (type: its class name, resource: the Thread object) before it
starts, ``before``/``after`` around its ``run()`` in the new thread, and
``destroy`` when ``run()`` returned. Inside ``run()`` the execution ids are
the thread's, and its trigger is the code that started it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import _hooks
from .._patching import Patches
from ._live import TrackedResource, finish, run_as, track

__all__ = ["patch_threads", "unpatch_threads"]

_patches = Patches()


class _TrackedRun:
    """Stands in for a started thread's ``run`` (an instance attribute, removed after)."""

    __slots__ = ("record", "run", "thread")

    def __init__(self, thread: threading.Thread, record: TrackedResource) -> None:
        self.thread = thread
        self.run = thread.run
        self.record = record

    def __call__(self) -> None:
        try:
            run_as(self.record, self.run)
        finally:
            self.forget_run()
            finish(self.record)

    def forget_run(self) -> None:
        # Break the thread -> run -> thread cycle and show the class's run again.
        vars(self.thread).pop("run", None)


def _tracked_start(original: Callable[[threading.Thread], None]) -> Callable[..., None]:
    def start(self: threading.Thread) -> None:
        if not _hooks.enabled.hooks or isinstance(vars(self).get("run"), _TrackedRun):
            return original(self)  # stranded (see async_hooks/_patching.py), or started twice
        record = track()
        record.attach(self)
        tracked = _TrackedRun(self, record)
        self.run = tracked  # type: ignore[method-assign]
        try:
            original(self)
        except BaseException:
            tracked.forget_run()
            finish(record)
            raise

    return start


def patch_threads() -> None:
    if not _patches:
        _patches.apply(threading.Thread, "start", _tracked_start)


def unpatch_threads() -> None:
    _patches.restore_all()
