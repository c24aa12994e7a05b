"""Chrome Trace Event Format files, written while the program runs.

Perfetto, ``chrome://tracing`` and speedscope open them. What is written:

* ``"M"`` metadata naming the process and each thread;
* one ``"X"`` slice per callback or task step, on the thread where it ran,
  named by the resource's type and the user code that created it, with the
  async id, trigger id and the named stores' values in ``args``;
* a flow (``"s"`` at the creation, ``"f"`` bound to the first step) from the
  execution that created each resource to that resource's first step;
* the resource's lifetime, ``init`` to ``destroy``, as an async span
  (``"b"``/``"e"``, ``id`` = async id), and ``promise_resolve`` as an instant.

Use::

    with TraceWriter("trace.json", stores=["request"]):
        asyncio.run(main())

Events go through a bounded queue to the file (the producer that finds 5,000
events queued, or the oldest older than half a second, writes them), so
memory stays flat however long the program runs, and no thread is added. The file is a JSON array,
valid once :meth:`TraceWriter.close` wrote its final ``]``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from .. import _hooks
from .._execution import TOP_LEVEL_ASYNC_ID
from .._runtime._live import CreationSite, live_resources
from ._values import DEFAULT_REPR_LIMIT, NamedStores, innermost_context, read_in_step

# The producer that finds this many events queued, or finds the oldest
# queued one older than the interval (seconds), writes the queue out: the
# bound on the memory the queue takes (about 140 bytes an event) and on how
# far the file lags behind.
_HIGH_WATER = 5_000
_FLUSH_INTERVAL = 0.5

# Bound once: read for every event.
_perf = time.perf_counter
_native_id = threading.get_native_id


def short_path(path: str) -> str:
    """``path`` relative to the working directory when it is under it, else as it is."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def site_label(site: CreationSite | None) -> str:
    """``file.py:12 handler``, the file relative to the working directory when under it."""
    if site is None:
        return ""
    return f"{short_path(site.filename)}:{site.lineno} {site.function}"


def _encoded_names(type: str, label: str) -> tuple[str, str, str]:
    """The JSON of a resource's type, of its slice name, and its ``"site"`` member."""
    name = f"{type} {label}" if label else type
    site_member = f',"site":{json.dumps(label)}' if label else ""
    return json.dumps(type), json.dumps(name), site_member


class _Resource:
    """What the trace remembers of a live resource: its name and ids, encoded once."""

    __slots__ = ("args_prefix", "name_json", "started", "type_json")

    def __init__(self, type_json: str, name_json: str, args_prefix: str) -> None:
        self.type_json = type_json
        self.name_json = name_json
        self.args_prefix = args_prefix
        self.started = False


class TraceWriter:
    """A hook that writes the program's resources and steps to a Chrome trace file.

    ``stores`` names the ``AsyncLocalStorage`` instances (by their ``name``)
    whose values go into each event's ``args``, rendered with a bounded
    ``repr`` (``repr_limit`` characters). Enabled by ``start()`` or
    ``with``; ``close()`` disables it and finishes the file, and is safe to
    call more than once and from a signal handler.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stores: Iterable[str] = (),
        repr_limit: int = DEFAULT_REPR_LIMIT,
        process_name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.stores = NamedStores(stores, repr_limit)
        self.process_name = process_name or os.path.basename(sys.argv[0] or "python")
        self.events_written = 0
        self._file = _open(self.path)
        self._first_event = True
        self._queue: deque[str] = deque()
        self._write_lock = threading.Lock()
        self._writer_ident: int | None = None
        self._closed = False
        self._pid = os.getpid()
        self._origin = time.perf_counter()
        self._resources: dict[int, _Resource] = {}
        # (type, code, line) -> the encoded type, name and "site" member
        self._names: dict[tuple[object, ...], tuple[str, str, str]] = {}
        # thread id -> the steps running on it, innermost last: (async id, start, stores)
        self._stacks: dict[int, list[tuple[int, float, str]]] = {}
        self._named_threads: set[int] = set()
        self._next_flush = time.monotonic() + _FLUSH_INTERVAL
        self._finalizes_multiprocessing_children = False
        self._hook = _hooks.AsyncHook(
            {
                "init": self._init,
                "before": self._before,
                "after": self._after,
                "destroy": self._destroy,
                "promise_resolve": self._promise_resolve,
            },
            creation_sites=True,  # slices are named by the site that made the resource
        )
        self._metadata("process_name", {"name": self.process_name}, tid=0)
        _writers.add(self)

    # -- the life of the writer ---------------------------------------------------

    def start(self) -> Self:
        """Enable the hook: events are written from now on."""
        self._hook.enable()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop tracing and finish the file: it is valid JSON from then on."""
        if self._closed:
            return
        self._hook.disable()
        end = self._now()
        # The top level as a slice of its own, so that flows from it have an anchor.
        self.add_slice(
            f"__main__ {self.process_name}",
            0.0,
            end,
            cat="program",
            args={"async_id": TOP_LEVEL_ASYNC_ID},
            tid=threading.main_thread().native_id,
        )
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._drain_locked()
            _write_all(self._file, b"\n]\n")
            self._file.close()

    def close_from_signal(self) -> None:
        """``close()`` from a signal handler, which may have interrupted this thread's write."""
        if self._writer_ident == threading.get_ident():
            # This thread is inside _drain_locked: finishing the file now would
            # interleave with that write. Leave the tail to the exit path.
            return
        if self._write_lock.acquire(timeout=2.0):
            self._write_lock.release()
            self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def flush(self) -> None:
        """Write the queued events to the file now."""
        with self._write_lock:
            if not self._closed:
                self._drain_locked()

    def _drain_locked(self) -> None:
        queue = self._queue
        count = len(queue)
        if not count:
            return
        events = [queue.popleft() for _ in range(count)]
        separator = "" if self._first_event else ",\n"
        self._first_event = False
        self._writer_ident = threading.get_ident()
        try:
            _write_all(self._file, (separator + ",\n".join(events)).encode())
        finally:
            self._writer_ident = None
        self.events_written += count

    def _put(self, event: str) -> None:
        queue = self._queue
        queue.append(event)
        queued = len(queue)
        if queued > _HIGH_WATER or (
            # Looked at once in a hundred events: a clock read costs more than this test.
            queued % 100 == 0 and time.monotonic() > self._next_flush
        ):
            self._next_flush = time.monotonic() + _FLUSH_INTERVAL
            self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent owns the file: the child writes its own, beside it.
        stem, suffix = os.path.splitext(self.path)
        self.path = f"{stem}.{os.getpid()}{suffix or '.json'}"
        self._pid = os.getpid()
        self._queue.clear()
        self._write_lock = threading.Lock()
        self._writer_ident = None
        self._named_threads.clear()
        self._stacks.clear()
        if self._closed:
            return
        # The parent's file object stays open and untouched: it is unbuffered,
        # so the child has nothing of the parent's to write into it.
        self._file = _open(self.path)
        self._first_event = True
        self._metadata("process_name", {"name": f"{self.process_name} (child)"}, tid=0)

    # -- events anyone may add ----------------------------------------------------------

    def _now(self) -> float:
        return (time.perf_counter() - self._origin) * 1e6

    def now(self) -> float:
        """The trace's clock: microseconds since the writer was made."""
        return self._now()

    def at(self, perf_counter: float) -> float:
        """A ``time.perf_counter()`` reading on the trace's clock."""
        return (perf_counter - self._origin) * 1e6

    def add_slice(
        self,
        name: str,
        start: float,
        end: float,
        *,
        cat: str,
        args: dict[str, Any] | None = None,
        tid: int | None = None,
    ) -> None:
        """A complete slice from ``start`` to ``end`` (trace clock, see :meth:`now`)."""
        event = {
            "ph": "X",
            "name": name,
            "cat": cat,
            "ts": round(start, 3),
            "dur": round(max(end - start, 0.0), 3),
            "pid": self._pid,
            "tid": threading.get_native_id() if tid is None else tid,
            "args": args or {},
        }
        self._put(json.dumps(event, default=str))

    def add_instant(self, name: str, *, cat: str, args: dict[str, Any], scope: str = "t") -> None:
        """An instant event now; ``scope`` is ``"t"`` (thread), ``"p"`` or ``"g"``."""
        event = {
            "ph": "i",
            "s": scope,
            "name": name,
            "cat": cat,
            "ts": round(self._now(), 3),
            "pid": self._pid,
            "tid": threading.get_native_id(),
            "args": args,
        }
        self._put(json.dumps(event, default=str))

    def _metadata(self, kind: str, args: dict[str, Any], *, tid: int) -> None:
        self._put(json.dumps({"ph": "M", "name": kind, "pid": self._pid, "tid": tid, "args": args}))

    def _thread_id(self) -> int:
        tid = _native_id()
        if tid not in self._named_threads:
            self._name_thread(tid)
        return tid

    def _name_thread(self, tid: int) -> None:
        self._named_threads.add(tid)
        self._metadata("thread_name", {"name": threading.current_thread().name}, tid=tid)

    # -- the hook's callbacks ---------------------------------------------------------
    # Encoded by hand rather than through json.dumps: these run for every
    # event, and the fixed parts need no escaping.

    def _stores_json(self) -> str:
        return self.stores.json_members() if self.stores else ""

    def _step_stores_json(self, async_id: int, *, ended: bool) -> str:
        # Step events may be emitted outside the step's context (asyncio's
        # Handle._run around Context.run): read the stores in the resource's.
        tracked = live_resources.get(async_id)
        if ended and tracked is not None:
            # A task's request may live in a run() scope inside the task (its
            # coroutine, suspended now, still holds it): nearer still.
            scope = innermost_context(tracked.resource)
            if scope is not None:
                return scope.run(self.stores.json_members)
        return read_in_step(tracked, self.stores.json_members)

    # The clock and the thread id are read inline below: a method call for
    # each would cost every event more than reading them does.

    def _init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        ts = (_perf() - self._origin) * 1e6
        tid = _native_id()
        if tid not in self._named_threads:
            self._name_thread(tid)
        tracked = live_resources.get(async_id)
        site = None if tracked is None else tracked.creation_site
        # Resources come from a few hundred lines of code: their names are
        # formatted and encoded once per (type, line), not once per resource.
        key = (type, None) if site is None else (type, site._code, site.lineno)
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = _encoded_names(type, site_label(site))
        type_json, name_json, site_member = names
        args_prefix = f'"async_id":{async_id},"trigger_async_id":{trigger_async_id}'
        self._resources[async_id] = _Resource(type_json, name_json, args_prefix)
        stores = self._stores_json()
        pid = self._pid
        self._put(
            f'{{"ph":"b","cat":"resource","name":{type_json},"id":{async_id},'
            f'"ts":{ts:.3f},"pid":{pid},"tid":{tid},"args":{{{args_prefix}{site_member}{stores}}}}}'
        )
        self._put(
            f'{{"ph":"s","cat":"cause","name":"cause","id":{async_id},'
            f'"ts":{ts:.3f},"pid":{pid},"tid":{tid}}}'
        )

    def _before(self, async_id: int) -> None:
        ts = (_perf() - self._origin) * 1e6
        tid = _native_id()
        if tid not in self._named_threads:
            self._name_thread(tid)
        stack = self._stacks.get(tid)
        if stack is None:
            stack = self._stacks[tid] = []
        # The stores as the step begins, kept for its slice: a step may leave
        # its request's scope before it ends (the last step of a handler).
        stack.append(
            (async_id, ts, self._step_stores_json(async_id, ended=False) if self.stores else "")
        )
        resource = self._resources.get(async_id)
        if resource is not None and not resource.started:
            resource.started = True
            self._put(
                f'{{"ph":"f","bp":"e","cat":"cause","name":"cause","id":{async_id},'
                f'"ts":{ts:.3f},"pid":{self._pid},"tid":{tid}}}'
            )

    def _after(self, async_id: int) -> None:
        end = (_perf() - self._origin) * 1e6
        tid = _native_id()
        stack = self._stacks.get(tid)
        if not stack:
            return  # the step began before the writer did
        entry = stack.pop()
        started_id, start, stores_before = entry
        if started_id != async_id:
            stack.append(entry)
            return
        resource = self._resources.get(async_id)
        if resource is None:
            name_json = '"step"'
            args = f'"async_id":{async_id}'
        else:
            name_json = resource.name_json
            args = resource.args_prefix
        stores = ""
        if self.stores:
            # A task's request may live in a run() scope inside the task (its
            # coroutine, suspended now, still holds it): read the stores there.
            stores = self._step_stores_json(async_id, ended=True)
            if not stores:
                stores = stores_before
        self._put(
            f'{{"ph":"X","cat":"step","name":{name_json},"ts":{start:.3f},'
            f'"dur":{end - start:.3f},"pid":{self._pid},"tid":{tid},'
            f'"args":{{{args}{stores}}}}}'
        )

    def _destroy(self, async_id: int) -> None:
        resource = self._resources.pop(async_id, None)
        if resource is None:
            return
        self._put(
            f'{{"ph":"e","cat":"resource","name":{resource.type_json},"id":{async_id},'
            f'"ts":{self._now():.3f},"pid":{self._pid},"tid":{self._thread_id()}}}'
        )

    def _promise_resolve(self, async_id: int) -> None:
        self._put(
            f'{{"ph":"i","s":"t","cat":"promise","name":"promise_resolve",'
            f'"ts":{self._now():.3f},"pid":{self._pid},"tid":{self._thread_id()},'
            f'"args":{{"async_id":{async_id}}}}}'
        )


def _open(path: str) -> io.FileIO:
    # Unbuffered: each write is one whole chunk of events, and a forked child
    # inherits no half-written buffer that it could flush into our file.
    file = io.FileIO(path, "w")
    _write_all(file, b"[\n")
    return file


def _write_all(file: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written or 0 :]


# Every writer not yet collected, for the fork handler.
_writers: weakref.WeakSet[TraceWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._after_fork_in_child()


def _before_fork() -> None:
    # A multiprocessing child ends with os._exit(), which skips atexit: its
    # own exit function runs finalizers, and it runs the after-fork hooks
    # registered here once it has cleared the parent's finalizers.
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    for writer in list(_writers):
        if not writer._finalizes_multiprocessing_children:
            writer._finalizes_multiprocessing_children = True
            util.register_after_fork(writer, _finalize_in_multiprocessing_child)


def _finalize_in_multiprocessing_child(writer: TraceWriter) -> None:
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, writer.close, exitpriority=-100)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
