"""Core costs, each measured side by side with its bare-contextvars equivalent.

Run with ``scripts/bench benchmarks/bench_core.py`` (``--quick`` for a fast
look). Every pair is timed in alternation, ``--repeats`` times, and the
table shows medians in nanoseconds per operation and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import timeit
from collections.abc import Callable
from contextvars import ContextVar, copy_context
from typing import Any

from async_hooks import AsyncLocalStorage, AsyncResource

var: ContextVar[int | None] = ContextVar("bare", default=None)
als = AsyncLocalStorage[int](name="bench")


def noop() -> None:
    return None


def raw_run(store: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """What ``als.run`` does, written by hand on a bare ContextVar, same signature."""
    token = var.set(store)
    try:
        return fn(*args, **kwargs)
    finally:
        var.reset(token)


def add(a: int, b: int) -> int:
    return a + b


BENCH_GLOBALS: dict[str, Any] = {
    "als": als,
    "var": var,
    "noop": noop,
    "add": add,
    "bound_add": AsyncLocalStorage.bind(add),
    "raw_run": raw_run,
    "copy_context": copy_context,
    "AsyncLocalStorage": AsyncLocalStorage,
    "AsyncResource": AsyncResource,
    "bound": AsyncLocalStorage.bind(noop),
    "runner": AsyncLocalStorage.snapshot(),
    "resource": AsyncResource("bench"),
}


def time_statement(statement: str, number: int) -> float:
    """Nanoseconds per execution of ``statement``."""
    timer = timeit.Timer(statement, globals=BENCH_GLOBALS)
    return timer.timeit(number) / number * 1e9


def compare(baseline: str, candidate: str, number: int, repeats: int) -> tuple[float, float]:
    """Medians of alternating runs of two statements."""
    base_times, cand_times = [], []
    for _ in range(repeats):
        base_times.append(time_statement(baseline, number))
        cand_times.append(time_statement(candidate, number))
    return statistics.median(base_times), statistics.median(cand_times)


def task_creation_ns(live_stores: int, tasks: int) -> float:
    """Nanoseconds to create and await one task with ``live_stores`` stores entered."""
    stores = [AsyncLocalStorage[int](name=f"s{i}") for i in range(live_stores)]

    async def child() -> None:
        return None

    async def main() -> float:
        for index, store in enumerate(stores):
            store.enter_with(index)
        start = time.perf_counter()
        for _ in range(tasks // 100):
            await asyncio.gather(*(asyncio.create_task(child()) for _ in range(100)))
        return time.perf_counter() - start

    return asyncio.run(main()) / tasks * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    number = 100_000 if args.quick else 400_000

    print(f"CPython {platform.python_version()} on {platform.machine()}, {repeats} repeats")
    print()
    print("| operation | bare contextvars (ns) | async_hooks (ns) | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    pairs = [
        ("`get_store()` vs `ContextVar.get()`", "var.get()", "als.get_store()", "<= 1.05"),
        ("`run(store, noop)` vs set/call/reset", "raw_run(1, noop)", "als.run(1, noop)", "<= 1.2"),
        (
            "`run(store, noop)` vs inline set/call/reset",
            "t = var.set(1)\ntry:\n    noop()\nfinally:\n    var.reset(t)",
            "als.run(1, noop)",
            "(info)",
        ),
        (
            "bound function call vs `copy_context().run`",
            "copy_context().run(noop)",
            "bound()",
            "<= 2.0",
        ),
        (
            "bound function call, 2 arguments, vs `copy_context().run`",
            "copy_context().run(add, 1, 2)",
            "bound_add(1, 2)",
            "(info)",
        ),
        (
            "snapshot runner call vs `copy_context().run`",
            "copy_context().run(noop)",
            "runner(noop)",
            "<= 2.0",
        ),
        (
            "`run_in_async_scope(noop)` vs `copy_context().run`",
            "copy_context().run(noop)",
            "resource.run_in_async_scope(noop)",
            "(info)",
        ),
        (
            "`AsyncResource(...)` + `run_in_async_scope` vs `copy_context().run`",
            "copy_context().run(noop)",
            "AsyncResource('bench').run_in_async_scope(noop)",
            "(info)",
        ),
    ]
    for label, baseline, candidate, goal in pairs:
        base, cand = compare(baseline, candidate, number, repeats)
        print(f"| {label} | {base:.1f} | {cand:.1f} | {cand / base:.2f} | {goal} |")

    print()
    tasks = 20_000 if args.quick else 100_000
    print(f"Creating and awaiting a task, by number of live stores ({tasks} tasks, median):")
    print()
    print("| live stores | ns per task | ratio to 0 stores |")
    print("|---:|---:|---:|")
    counts = (0, 1, 10, 100)
    samples: dict[int, list[float]] = {count: [] for count in counts}
    for _ in range(max(3, repeats // 3)):
        for count in counts:  # interleaved, so drift hits every count alike
            samples[count].append(task_creation_ns(count, tasks))
    base = statistics.median(samples[0])
    for count in counts:
        median = statistics.median(samples[count])
        print(f"| {count} | {median:.0f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
