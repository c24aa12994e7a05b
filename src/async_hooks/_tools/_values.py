"""Store values as tools show them: found by name, rendered safely.

A store exists only once the program created it, so names given on the
command line are resolved late and again while some are still missing.
A value's ``repr`` is bounded in length and never raises.
"""

from __future__ import annotations

import asyncio
import json
import reprlib
import sys
import time
from collections.abc import Callable, Iterable
from contextvars import Context
from typing import TYPE_CHECKING, Any, TypeVar

from .._coroutines import ContextCoroutine, CoroutineWrapper
from .._execution import current_frame
from .._policy import live_stores, stores_in
from .._storage import AsyncLocalStorage

if TYPE_CHECKING:
    from .._runtime._live import TrackedResource

T = TypeVar("T")

#: How long a rendered value may be, by default (characters).
DEFAULT_REPR_LIMIT = 1000

# Looking every store up on every event would cost a scan per event: while a
# name is still missing, look again at most this often (seconds).
_RETRY_INTERVAL = 0.05


def safe_repr(value: object, limit: int = DEFAULT_REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters; a failing repr is described, not raised."""
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlong = limit
    try:
        text = shortener.repr(value)
    except Exception as error:  # a user's __repr__ may raise anything
        return f"<repr of {type(value).__name__} failed: {type(error).__name__}>"
    if len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    return text


class NamedStores:
    """The stores a user named, found among the live ones when they appear.

    ``current()`` reads each found store in the current context and renders
    the values that changed since the last call (identity is enough: a store
    holds the same object for a whole request).
    """

    def __init__(self, names: Iterable[str], limit: int = DEFAULT_REPR_LIMIT) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.limit = limit
        self._found: dict[str, AsyncLocalStorage[Any]] = {}
        self._next_lookup = 0.0
        # name -> (the last value seen, its rendering, as a JSON member)
        self._rendered: dict[str, tuple[object, str, str]] = {}
        #: Every store name seen while looking (for the warning at exit).
        self.seen_names: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.names)

    def _lookup(self) -> None:
        now = time.monotonic()
        if now < self._next_lookup:
            return
        self._next_lookup = now + _RETRY_INTERVAL
        wanted = set(self.names)
        for store in live_stores.all_stores():
            self.seen_names.add(store.name)
            if store.name in wanted:
                self._found[store.name] = store

    def current(self) -> dict[str, str]:
        """``{name: rendered value}`` of the named stores that have a value here."""
        if len(self._found) < len(self.names):
            self._lookup()
        values: dict[str, str] = {}
        for name, store in self._found.items():
            value = store.get_store()
            if value is None:
                continue
            values[name] = self._render(name, value)[1]
        return values

    def _render(self, name: str, value: object) -> tuple[object, str, str]:
        cached = self._rendered.get(name)
        if cached is None or cached[0] is not value:
            text = safe_repr(value, self.limit)
            cached = self._rendered[name] = (value, text, f"{json.dumps(name)}:{json.dumps(text)}")
        return cached

    def json_members(self) -> str:
        """``current()`` as JSON object members, each after a comma (``''`` when none).

        Made for trace events, which it is called for twice per step: a
        value's encoding is reused for as long as the store holds that value.
        """
        if len(self._found) < len(self.names):
            self._lookup()
        members = ""
        for name, store in self._found.items():
            value = store.get_store()
            if value is not None:
                members += "," + self._render(name, value)[2]
        return members

    def missing(self) -> list[str]:
        """The names no live store ever had."""
        self._next_lookup = 0.0
        self._lookup()
        return [name for name in self.names if name not in self._found]


def render_stores(stores: dict[str, object], limit: int = DEFAULT_REPR_LIMIT) -> dict[str, str]:
    """Each value of ``{name: value}`` rendered with :func:`safe_repr`."""
    return {name: safe_repr(value, limit) for name, value in stores.items()}


def innermost_context(resource: object) -> Context | None:
    """The context a suspended task's innermost ``run``/``bind`` scope runs its code in.

    ``await store.run(value, handler)`` runs ``handler`` in a context of its
    own, inside the task's: the request's stores are there, not in the
    task's context. None when the task has no such scope (or is no task).
    """
    if not isinstance(resource, asyncio.Task):
        return None
    found: Context | None = None
    coro: object = resource.get_coro()
    for _ in range(64):
        if isinstance(coro, ContextCoroutine):
            found = coro._context
        if isinstance(coro, CoroutineWrapper):
            coro = coro._coro
            continue
        inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is None:
            break
        coro = inner
    return found


def context_of(record: TrackedResource | None) -> Context | None:
    """The context a tracked resource's code runs in, as far as it can be read now.

    A handle's is the one it was scheduled with; a task's is its own
    (``task.get_context()``, 3.12+). CPython 3.11 does not expose a task's
    context: while the task waits on a future, the future's done-callback
    that wakes the task carries it; otherwise the record holds a copy of the
    creator's context, which misses what the task entered since.
    """
    if record is None:
        return None
    context = record.context
    if sys.version_info < (3, 12):
        task = record.resource
        if isinstance(task, asyncio.Task):
            waiter = getattr(task, "_fut_waiter", None)
            for callback, callback_context in getattr(waiter, "_callbacks", None) or ():
                if getattr(callback, "__self__", None) is task:
                    return callback_context  # type: ignore[no-any-return]
    return context


def read_in_step(record: TrackedResource | None, read: Callable[[], T]) -> T:
    """``read()`` in the context of the resource whose step this event belongs to.

    Step events come from inside that context (uvloop, threads, executor
    jobs) or from just outside it (asyncio's ``Handle._run``): inside, the
    current frame is the record itself, and the current context is the one.
    """
    if record is None or current_frame.get() is record:
        return read()
    context = context_of(record)
    if context is None:
        return read()
    try:
        return context.run(read)
    except RuntimeError:  # entered right now by another thread
        return read()


def stores_by_name(context: Context) -> dict[str, object]:
    """The value of every live store with an entry in ``context``, by store name."""
    return {store.name: value for store, value in stores_in(context).items()}
