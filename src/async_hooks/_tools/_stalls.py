"""A loop-stall detector: steps that block the event loop longer than a threshold.

A hook times every task step and loop callback; a watchdog thread looks at
the running steps a few times per threshold and, once one has run too long,
samples the stack of its thread *while it is still blocking* (so the report
points at the ``time.sleep`` or the CPU loop, not at where the step ended).
When the step ends, the stall is reported with its duration, that stack,
the resource and the stores of the request it was running for.

Use::

    with StallDetector(100, on_stall=print):   # milliseconds
        asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from contextvars import Context, copy_context
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Self

from .. import _hooks
from .._runtime._live import TrackedResource, _in_machinery, live_resources
from ._trace import short_path, site_label
from ._values import DEFAULT_REPR_LIMIT, innermost_context, render_stores, stores_by_name

if TYPE_CHECKING:
    from ._trace import TraceWriter

#: Threads of the tools are named so; reports leave them out.
WATCHDOG_NAME = "async-hooks-stall-watchdog"
# Innermost frames kept of a sampled stack.
_STACK_DEPTH = 16
# A step still blocking after this many thresholds (and at least a second)
# is reported while it blocks, as well as when it ends: it may never end.
_HANG_FACTOR = 10
# The stalls kept on the detector for callers to read; older ones are dropped.
_KEPT = 1000


@dataclass(frozen=True)
class Stall:
    """One step that blocked its event loop for longer than the threshold."""

    #: The resource whose step blocked: its async id, type and creation site.
    async_id: int
    type: str
    creation_site: str
    #: How long the step ran, in seconds.
    duration: float
    #: Where the step was blocking, sampled while it blocked (innermost last).
    stack: list[str]
    #: The stores of the blocked work, rendered (``{name: repr}``).
    stores: dict[str, str] = field(default_factory=dict)
    #: The thread whose loop was blocked.
    thread: str = ""
    #: What ran: a task's coroutine (``serve_client()``) or a callback's name.
    work: str = ""
    #: When the step started and ended (``time.perf_counter()``).
    started: float = 0.0
    ended: float = 0.0

    def format(self) -> str:
        """The report a person reads."""
        site = f" (created at {self.creation_site})" if self.creation_site else ""
        work = f" {self.work}" if self.work else ""
        lines = [
            f"async-hooks: stall: {self.type} #{self.async_id}{work}{site} blocked the event loop "
            f"of thread {self.thread!r} for {self.duration * 1000:.1f} ms"
        ]
        if self.stores:
            lines.append("    stores: " + ", ".join(f"{k}={v}" for k, v in self.stores.items()))
        if self.stack:
            lines.append("    blocking at (sampled while it blocked):")
            lines.extend("      " + line for line in "".join(self.stack).rstrip().splitlines())
        return "\n".join(lines) + "\n"


class _Step:
    __slots__ = ("async_id", "context", "hang_reported", "record", "stack", "start")

    def __init__(
        self, async_id: int, start: float, record: TrackedResource, context: Context
    ) -> None:
        self.async_id = async_id
        self.start = start
        self.record = record
        # The context as the step began: a request scope that the step leaves
        # before it ends (the last step of a handler) is still seen here.
        self.context = context
        self.stack: list[str] | None = None
        self.hang_reported = False


class StallDetector:
    """A hook plus a watchdog thread that report steps running longer than ``threshold_ms``.

    ``on_stall`` receives each :class:`Stall` (default: its text on
    ``stream``, stderr); a ``trace`` (a :class:`TraceWriter`) also gets a
    slice for it. ``stores`` limits the stores shown to those names (all by
    default). The last thousand stalls are kept in :attr:`stalls`.
    """

    def __init__(
        self,
        threshold_ms: float,
        *,
        stores: Iterable[str] | None = None,
        on_stall: Callable[[Stall], object] | None = None,
        trace: TraceWriter | None = None,
        stream: IO[str] | None = None,
        repr_limit: int = DEFAULT_REPR_LIMIT,
    ) -> None:
        if isinstance(threshold_ms, bool) or not isinstance(threshold_ms, int | float):
            raise TypeError(
                f'The "threshold_ms" argument must be a number. Received {threshold_ms!r}'
            )
        if not threshold_ms > 0:
            raise ValueError(
                f'The "threshold_ms" argument must be above 0. Received {threshold_ms}'
            )
        self.threshold = threshold_ms / 1000
        self.stores = None if stores is None else (tuple(stores) or None)
        self.on_stall = on_stall
        self.trace = trace
        self.stream = stream
        self.repr_limit = repr_limit
        self.stalls: deque[Stall] = deque(maxlen=_KEPT)
        # thread ident -> the loop step running on it (the outermost one)
        self._running: dict[int, _Step] = {}
        # type name -> whether its steps run on an event loop (threads and
        # executor jobs run for as long as they like, by design)
        self._loop_types: dict[str, bool] = {}
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._hook = _hooks.AsyncHook({"before": self._before, "after": self._after})

    def start(self) -> Self:
        """Start the watchdog (before the hook, so that it is not tracked) and the hook."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name=WATCHDOG_NAME, daemon=True)
            self._watchdog.start()
        self._hook.enable()
        return self

    def close(self) -> None:
        self._hook.disable()
        self._stop.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the hook: a few dict operations, a clock read and a context copy per step ----

    def _before(self, async_id: int) -> None:
        ident = threading.get_ident()
        if ident in self._running:
            return  # nested inside a loop step, which owns the clock
        record = live_resources.get(async_id)
        if record is None:
            return
        on_loop = self._loop_types.get(record.type)
        if on_loop is None:
            on_loop = self._loop_types[record.type] = _runs_on_a_loop(record)
        if on_loop:
            # copy_context() is O(1): the context's mapping is shared, not copied.
            self._running[ident] = _Step(async_id, time.perf_counter(), record, copy_context())

    def _after(self, async_id: int) -> None:
        ident = threading.get_ident()
        step = self._running.get(ident)
        if step is None or step.async_id != async_id:
            return
        end = time.perf_counter()
        del self._running[ident]
        if end - step.start >= self.threshold:
            self._report(step, end)

    # -- the watchdog -------------------------------------------------------------------

    def _watch(self) -> None:
        interval = min(max(self.threshold / 4, 0.001), 0.25)
        while not self._stop.wait(interval):
            now = time.perf_counter()
            for ident, step in list(self._running.items()):
                age = now - step.start
                if age < self.threshold:
                    continue
                if step.stack is None:
                    step.stack = _sample(ident)
                if (
                    not step.hang_reported
                    and age >= max(self.threshold * _HANG_FACTOR, 1.0)
                    and self._running.get(ident) is step
                ):
                    step.hang_reported = True
                    self._write(
                        f"async-hooks: stall: {step.record.type} #{step.async_id} has been "
                        f"blocking its event loop for {age:.1f} s and still is:\n"
                        + "".join(_sample(ident))
                    )

    # -- reporting --------------------------------------------------------------------

    def _report(self, step: _Step, end: float) -> None:
        # Runs in the blocked step's context, but a task's request may live in
        # a run() scope inside it: that one is nearer to the blocking code.
        context = innermost_context(step.record.resource) or copy_context()
        values = {**stores_by_name(step.context), **stores_by_name(context)}
        if self.stores is not None:
            values = {name: value for name, value in values.items() if name in self.stores}
        stall = Stall(
            async_id=step.async_id,
            type=step.record.type,
            creation_site=site_label(step.record.creation_site),
            duration=end - step.start,
            stack=step.stack or [],
            stores=render_stores(values, self.repr_limit),
            thread=threading.current_thread().name,
            work=_work_of(step.record.resource),
            started=step.start,
            ended=end,
        )
        self.stalls.append(stall)
        if self.trace is not None and not self.trace.closed:
            self.trace.add_slice(
                f"stall {stall.duration * 1000:.1f} ms: {stall.type} {stall.creation_site}",
                self.trace.at(stall.started),
                self.trace.at(stall.ended),
                cat="stall",
                args={
                    "async_id": stall.async_id,
                    "duration_ms": round(stall.duration * 1000, 3),
                    "stack": "".join(stall.stack),
                    **stall.stores,
                },
            )
        if self.on_stall is not None:
            self.on_stall(stall)
        else:
            self._write(stall.format())

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stream at exit: the stall is still in .stalls and the trace


def _work_of(resource: object) -> str:
    if isinstance(resource, asyncio.Task):
        coro = resource.get_coro()
        return f"{getattr(coro, '__qualname__', type(coro).__name__)}()"
    callback = getattr(resource, "_callback", None)
    callback = getattr(callback, "callback", callback)  # tracking wraps it
    name = getattr(callback, "__qualname__", None)
    return f"{name}()" if name else ""


def _runs_on_a_loop(record: TrackedResource) -> bool:
    resource = record.resource
    if isinstance(resource, threading.Thread):
        return False
    return type(resource).__name__ != "ExecutorJob"


def _sample(ident: int) -> list[str]:
    frame: FrameType | None = sys._current_frames().get(ident)
    if frame is None:
        return []
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=_STACK_DEPTH)
    summary.reverse()
    # The step's own code is what follows the last frame of the loop and of
    # the tracking machinery; what precedes is the same for every step.
    machinery = [index for index, entry in enumerate(summary) if _in_machinery(entry.filename)]
    if machinery and machinery[-1] + 1 < len(summary):
        del summary[: machinery[-1] + 1]
    for entry in summary:
        entry.filename = short_path(entry.filename)
    return summary.format()
