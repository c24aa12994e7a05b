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
from typing import IO, TYPE_CHECKING, Any, Self

from .. import _hooks
from .._runtime._live import TrackedResource, _in_machinery, live_resources
from ._trace import short_path, site_label
from ._values import (
    DEFAULT_REPR_LIMIT,
    context_of,
    innermost_context,
    read_in_step,
    render_stores,
    stores_by_name,
)

if TYPE_CHECKING:
    from ._trace import TraceWriter

# Bound once: the hook's callbacks run for every step of every task.
_get_ident = threading.get_ident
_clock = time.perf_counter
_live_get = live_resources.get

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
        else:
            # The watchdog thread got no CPU between the threshold and the end.
            lines.append("    (the watchdog could not sample its stack while it blocked)")
        return "\n".join(lines) + "\n"


class _Sample:
    """What the watchdog saw of a step that ran past the threshold, while it ran."""

    __slots__ = ("hang_reported", "stack", "start", "stores")

    def __init__(self, start: float, stack: list[str], stores: dict[str, object]) -> None:
        self.start = start
        self.stack = stack
        # Read while the step blocked: a request scope the step leaves before
        # it ends (the last step of a handler) is still seen here.
        self.stores = stores
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
        # thread ident -> its running steps, outermost first, flattened:
        # [async id, start, async id, start, ...]. Written by that thread only.
        self._stacks: dict[int, list[Any]] = {}
        # (thread ident, async id, start) -> what the watchdog saw of a step past
        # the threshold, while it ran
        self._samples: dict[tuple[int, int, float], _Sample] = {}
        # thread ident -> the context its current step began in (3.11 only)
        self._step_contexts: dict[int, Context] = {}
        # type name -> whether its steps run on an event loop (threads and
        # executor jobs run for as long as they like, by design)
        self._loop_types: dict[str, bool] = {}
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        before, after = self._make_callbacks()
        self._hook = _hooks.AsyncHook({"before": before, "after": after}, creation_sites=True)

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

    # -- the hook: its cost is what every loop step pays ------------------------------
    # Per step: a thread-local read, a push and a pop of two items, two clock reads;
    # no allocation, no lookup. Whether a step is loop work at all (threads and
    # executor jobs may run as long as they like) is asked only of the steps
    # that ran past the threshold, by the watchdog and by the report.

    def _make_callbacks(self) -> tuple[Callable[[int], None], Callable[[int], None]]:
        local = threading.local()
        stacks = self._stacks
        threshold = self.threshold
        report = self._report

        def before(async_id: int) -> None:
            try:
                stack = local.stack
            except AttributeError:
                stack = local.stack = []
                stacks[_get_ident()] = stack
            stack += (async_id, _clock())

        if sys.version_info < (3, 12):
            # 3.11 exposes no task's context, and where a step's events come
            # from inside it (uvloop), the step's start is the moment to keep
            # it, for the watchdog. A copy is O(1); 3.12+ reads it from the task.
            step_contexts = self._step_contexts
            timed_before = before

            def before(async_id: int) -> None:
                timed_before(async_id)
                step_contexts[_get_ident()] = copy_context()

        def after(async_id: int) -> None:
            try:
                stack = local.stack
            except AttributeError:
                return  # the step began before the detector did
            if len(stack) < 2 or stack[-2] != async_id:
                return
            start = stack[-1]
            del stack[-2:]
            end = _clock()
            if end - start >= threshold:
                report(_get_ident(), async_id, start, end)

        return before, after

    def _on_loop(self, async_id: int) -> TrackedResource | None:
        """The record of a running loop step; None for threads, jobs and untracked work."""
        record = _live_get(async_id)
        if record is None:
            return None
        on_loop = self._loop_types.get(record.type)
        if on_loop is None:
            on_loop = self._loop_types[record.type] = _runs_on_a_loop(record)
        return record if on_loop else None

    # -- the watchdog -------------------------------------------------------------------

    def _watch(self) -> None:
        interval = min(max(self.threshold / 4, 0.001), 0.25)
        samples = self._samples
        next_cleanup = 0.0
        while not self._stop.wait(interval):
            now = _clock()
            for ident, stack in list(self._stacks.items()):
                entries = stack[:]  # one C call: a consistent copy
                # The innermost loop step past the threshold is the one blocking.
                for index in range(len(entries) - 2, -1, -2):
                    async_id, start = entries[index], entries[index + 1]
                    age = now - start
                    if age < self.threshold:
                        continue
                    record = self._on_loop(async_id)
                    if record is None:
                        continue
                    key = (ident, async_id, start)
                    sample = samples.get(key)
                    if sample is None:
                        sample = samples[key] = _Sample(
                            start,
                            _sample(ident),
                            _stores_while_running(record, ident, self._step_contexts.get(ident)),
                        )
                    if not sample.hang_reported and age >= max(self.threshold * _HANG_FACTOR, 1.0):
                        sample.hang_reported = True
                        self._write(
                            f"async-hooks: stall: {record.type} #{async_id} has been "
                            f"blocking its event loop for {age:.1f} s and still is:\n"
                            + "".join(_sample(ident))
                        )
                    break
            if now >= next_cleanup:
                # Forget threads that ended, and samples nobody reported.
                next_cleanup = now + 1.0
                alive = sys._current_frames().keys()
                for ident in [ident for ident in self._stacks if ident not in alive]:
                    self._stacks.pop(ident, None)
                for key in [key for key in samples if now - key[2] > 60 * self.threshold + 60]:
                    samples.pop(key, None)

    # -- reporting --------------------------------------------------------------------

    def _report(self, ident: int, async_id: int, start: float, end: float) -> None:
        record = self._on_loop(async_id)
        if record is None:
            return
        sample = self._samples.pop((ident, async_id, start), None)
        # The stores at the step's end: a task's request may live in a run()
        # scope inside it, nearer to the blocking code than the task's context.
        context = innermost_context(record.resource)
        if context is None:
            context = read_in_step(record, copy_context)
        values = {**(sample.stores if sample else {}), **stores_by_name(context)}
        if self.stores is not None:
            values = {name: value for name, value in values.items() if name in self.stores}
        stall = Stall(
            async_id=async_id,
            type=record.type,
            creation_site=site_label(record.creation_site),
            duration=end - start,
            stack=sample.stack if sample else [],
            stores=render_stores(values, self.repr_limit),
            thread=threading.current_thread().name,
            work=_work_of(record.resource),
            started=start,
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


def _stores_while_running(
    record: TrackedResource, ident: int, step_context: Context | None
) -> dict[str, object]:
    # Read from the watchdog thread: a Context is an immutable mapping that
    # its thread replaces on each change, so reading it from here is safe.
    # Nearest last: the resource's context, the handle running on the loop's
    # stack (the task's own context, even on 3.11), a run() scope inside it.
    values: dict[str, object] = {}
    for context in (
        context_of(record),
        step_context,
        _running_handle_context(ident),
        innermost_context(record.resource),
    ):
        if context is not None:
            values.update(stores_by_name(context))
    return values


def _running_handle_context(ident: int) -> Context | None:
    """The context of the asyncio handle that thread ``ident`` is running, from its stack."""
    frame: FrameType | None = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == "_run":
            handle = frame.f_locals.get("self")
            if isinstance(handle, asyncio.Handle):
                context = getattr(handle, "_context", None)
                return context if isinstance(context, Context) else None
        frame = frame.f_back
    return None


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
