"""``install()``: threads, pools and ``run_in_executor`` carry context without the helpers.

For code that cannot be changed to use :mod:`async_hooks.propagation`'s
helpers (a library that starts its own threads or submits to its own pool),
``install()`` patches the few standard-library entry points every such path
goes through:

- ``threading.Thread.start``: the thread runs in the starter's context
  (``Crossing.THREADS``), through the one wrapper it shares with lifecycle
  tracking (``async_hooks/_thread_start.py`` owns it);
- ``ThreadPoolExecutor.submit``: each job runs in its submitter's context
  (``Crossing.POOLS``); ``Executor.map`` and ``loop.run_in_executor`` (stdlib
  loop and uvloop) submit through it;
- ``ProcessPoolExecutor.submit``: each job carries its submitter's declared
  stores (``Crossing.PROCESSES``);
- ``concurrent.futures.Future.add_done_callback``: the callback runs in the
  context of the code that added it (``Crossing.POOLS``);
- ``asyncio.to_thread``: applies the stores' policy.

It is opt-in, idempotent and reversible: ``uninstall()`` puts back the very
objects that were there before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import concurrent.futures.thread
import functools
import threading
from collections.abc import Callable
from contextvars import Context
from typing import Any

from .. import _thread_start
from .._patching import Patches
from .._policy import Crossing, capture_context
from ._executors import bind_callback, to_thread
from ._processes import ProcessJob, carry_stores


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.patches = Patches()
        # Read by every wrapper: a wrapper that another library wrapped in
        # turn cannot be removed by uninstall(), so it must go inert instead.
        self.active = False


_state = _State()


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return _state.active


def install() -> None:
    """Make threads, pools and ``run_in_executor`` carry context automatically.

    Idempotent: a second call does nothing. Undo it with ``uninstall()``.
    """
    with _state.lock:
        if _state.active:
            return
        _thread_start.set_context_rule(_thread_context)
        patches = _state.patches
        patches.apply(concurrent.futures.ThreadPoolExecutor, "submit", _wrap_thread_pool_submit)
        patches.apply(concurrent.futures.ProcessPoolExecutor, "submit", _wrap_process_pool_submit)
        patches.apply(concurrent.futures.Future, "add_done_callback", _wrap_add_done_callback)
        patches.apply(asyncio, "to_thread", lambda _original: to_thread)
        _state.active = True


def uninstall() -> None:
    """Undo ``install()``: every patched attribute is the original object again.

    Idempotent. Where another library has since wrapped one of our
    replacements, that attribute is left to it and our wrapper passes calls
    straight through.
    """
    with _state.lock:
        _state.active = False
        _state.patches.restore_all()
        _thread_start.set_context_rule(None)


# -- the wrappers -------------------------------------------------------------------

# Threads that only serve pools: they run every job in the job's own context,
# so they start empty rather than keep the stores of whoever made the pool grow.
_POOL_WORKER_TARGETS = tuple(
    target
    for target in (getattr(concurrent.futures.thread, "_worker", None),)
    if target is not None
)
_POOL_THREAD_TYPES = tuple(
    cls
    for cls in (getattr(concurrent.futures.process, "_ExecutorManagerThread", None),)
    if isinstance(cls, type)
)


def _starts_empty(thread: threading.Thread) -> bool:
    return getattr(thread, "_target", None) in _POOL_WORKER_TARGETS or isinstance(
        thread, _POOL_THREAD_TYPES
    )


def _thread_context(thread: threading.Thread) -> Context:
    if _starts_empty(thread):
        return Context()
    return capture_context(Crossing.THREADS)


def _wrap_thread_pool_submit(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not _state.active:
            return original(self, fn, *args, **kwargs)
        return original(self, capture_context(Crossing.POOLS).run, fn, *args, **kwargs)

    return submit


def _wrap_process_pool_submit(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not _state.active or isinstance(fn, ProcessJob):
            # A ProcessJob (from ContextExecutor or carry_stores) already carries its stores.
            return original(self, fn, *args, **kwargs)
        return original(self, carry_stores(fn), *args, **kwargs)

    return submit


def _wrap_add_done_callback(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def add_done_callback(self: Any, fn: Callable[..., Any]) -> Any:
        if not _state.active:
            return original(self, fn)
        return original(self, bind_callback(fn))

    return add_done_callback
