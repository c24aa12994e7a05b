"""The one replacement of ``threading.Thread.start``, shared by ``install()`` and tracking.

Two features act when a thread starts: ``install()`` makes its ``run()``
enter a context (``propagation/_install.py``), and lifecycle tracking gives
it ``init``/``before``/``after``/``destroy`` while a hook is enabled
(``_runtime/_threads.py``). Each says what it needs here; this module alone
replaces ``Thread.start``, with one wrapper that is in place while either
feature is on and is removed, the identical original put back, once
neither is, whatever order they were switched on and off in. It lives at
the package top, beside ``_patching.py``, because neither feature owns the
other: ``install()`` works with no hook, and tracking without ``install()``.

Inside the new thread the two always nest the same way: ``run()`` enters
its context first and runs as the tracked resource inside it, so that it
sees both the starter's stores and the thread's own ids::

    set_context_rule(rule)   # install(): rule(thread) is the context its run() enters
    set_tracker(tracker)     # first hook enabled: tracker(thread) wraps its run() in events
    set_context_rule(None)   # with both None again, Thread.start is the original
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextvars import Context
from typing import Protocol

from ._patching import Patches


class ThreadRun(Protocol):
    """What a tracker puts around one thread's ``run()``."""

    def __call__(self, run: Callable[[], object], /) -> object:
        """Call ``run`` in the new thread (inside the thread's context, if it has one)."""

    def end(self) -> None:
        """Called once, after ``run`` returned or raised, or when ``start()`` raised."""


#: install()'s rule: the context a thread about to start will run in (None: its own).
ContextRule = Callable[[threading.Thread], Context | None]
#: Tracking: what to put around the run of a thread about to start (None: nothing).
Tracker = Callable[[threading.Thread], ThreadRun | None]

# Invariant: our wrapper is on Thread.start exactly while _context_rule or
# _tracker is set (or is stranded under someone else's, inert with both
# unset); both are read without the lock by every start().
_lock = threading.Lock()
_patches = Patches()
_context_rule: ContextRule | None = None
_tracker: Tracker | None = None


def set_context_rule(rule: ContextRule | None) -> None:
    """Give every thread started from now on the context ``rule`` picks; None: stop."""
    global _context_rule
    with _lock:
        _context_rule = rule
        _apply_or_restore()


def set_tracker(tracker: Tracker | None) -> None:
    """Put ``tracker``'s run around every thread started from now on; None: stop."""
    global _tracker
    with _lock:
        _tracker = tracker
        _apply_or_restore()


def _apply_or_restore() -> None:
    if _context_rule is None and _tracker is None:
        _patches.restore_all()
    elif not _patches:
        _patches.apply(threading.Thread, "start", _wrap_start)


def start_in(thread: threading.Thread, context: Context | None, start: Callable[[], None]) -> None:
    """Call ``start`` (``thread``'s bound start), with the thread's run prepared.

    ``context`` is the context the run enters; None leaves the choice to
    install()'s rule, if install() is on. The tracker, if tracking is on,
    runs inside that context. ``ContextThread.start`` calls this with its
    own context; the replaced ``Thread.start`` then finds the run prepared
    and only passes the call on.
    """
    if context is None:
        rule = _context_rule
        if rule is not None:
            context = rule(thread)
    tracker = _tracker
    tracked = tracker(thread) if tracker is not None else None
    if context is None and tracked is None:
        start()
        return
    prepared = _PreparedRun(thread, context, tracked)
    # An instance attribute shadows the class's run() for this thread only,
    # so a run() that a subclass overrides is covered too.
    vars(thread)["run"] = prepared
    try:
        start()
    except BaseException:
        # Not started (a second start(), no resources): leave it as it was.
        prepared.forget()
        if tracked is not None:
            tracked.end()
        raise


class _PreparedRun:
    """Stands in for a started thread's ``run`` (an instance attribute, removed after)."""

    __slots__ = ("context", "run", "thread", "tracked")

    def __init__(
        self, thread: threading.Thread, context: Context | None, tracked: ThreadRun | None
    ) -> None:
        self.thread = thread
        self.run = thread.run
        self.context = context
        self.tracked = tracked

    def __call__(self) -> None:
        context, tracked = self.context, self.tracked
        try:
            if context is None:
                assert tracked is not None  # start_in prepares nothing without either
                tracked(self.run)
            elif tracked is None:
                context.run(self.run)
            else:
                context.run(tracked, self.run)
        finally:
            self.forget()
            if tracked is not None:
                tracked.end()

    def forget(self) -> None:
        # Breaks the thread -> run -> thread cycle, lets go of the context,
        # and shows the class's run() again.
        vars(self.thread).pop("run", None)


def _wrap_start(original: Callable[[threading.Thread], None]) -> Callable[[threading.Thread], None]:
    @functools.wraps(original)
    def start(self: threading.Thread) -> None:
        if type(vars(self).get("run")) is _PreparedRun:
            # Prepared by start_in already: a ContextThread, or a second
            # start() of a running thread, which the original refuses.
            original(self)
        else:
            # Stranded under someone else's wrapper (see _patching.py), with
            # both features off, start_in only passes the call on.
            start_in(self, None, original.__get__(self))

    return start
