"""Core costs, each measured side by side with its bare-contextvars equivalent.

Run with ``scripts/bench benchmarks/bench_core.py`` (``--quick`` for a fast
look). Every pair is timed in alternation, ``--repeats`` times, and the
table shows medians in nanoseconds per operation and the median of the
ratios of neighbouring samples. It
measures the implementation that is active (the compiled accelerator, or
the pure-Python fallback under ``ASYNC_HOOKS_PURE_PYTHON=1``); ``--paths
both`` runs the table once for each.

``--callgrind`` counts instructions instead, which repeat exactly where
timings are noisy: each statement of the same pairs runs ``N`` and then
``2N`` times under valgrind's callgrind, which dumps its counters at each
marker call between the runs, and the cost per execution is the difference
divided by ``N``, minus the same for an empty statement (timeit's loop).
Startup, imports and warm-up cancel out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from contextvars import ContextVar, copy_context
from typing import Any

from _callgrind import part_totals, per_run

from async_hooks import AsyncLocalStorage, AsyncResource
from async_hooks.lowlevel import accelerated

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


INLINE_RUN = "t = var.set(1)\ntry:\n    noop()\nfinally:\n    var.reset(t)"

# (label, bare-contextvars baseline, candidate, goal: the largest ratio
# accepted for the accelerator, None for information only).
PAIRS: list[tuple[str, str, str, float | None]] = [
    ("`get_store()` / `ContextVar.get()`", "var.get()", "als.get_store()", 1.02),
    ("`run(store, noop)` / set, call and reset inline", INLINE_RUN, "als.run(1, noop)", 1.15),
    (
        "`run(store, noop)` / the same in a function of run's signature",
        "raw_run(1, noop)",
        "als.run(1, noop)",
        None,
    ),
    ("`enter_with(1)` / `ContextVar.set(1)`", "var.set(1)", "als.enter_with(1)", None),
    (
        "bound function call / `copy_context().run(noop)`",
        "copy_context().run(noop)",
        "bound()",
        1.25,
    ),
    (
        "bound function call, 2 arguments / `copy_context().run(add, 1, 2)`",
        "copy_context().run(add, 1, 2)",
        "bound_add(1, 2)",
        None,
    ),
    (
        "snapshot runner call / `copy_context().run(noop)`",
        "copy_context().run(noop)",
        "runner(noop)",
        1.25,
    ),
    (
        "`run_in_async_scope(noop)` / `copy_context().run(noop)`",
        "copy_context().run(noop)",
        "resource.run_in_async_scope(noop)",
        None,
    ),
    (
        "`AsyncResource(...)` + `run_in_async_scope` / `copy_context().run(noop)`",
        "copy_context().run(noop)",
        "AsyncResource('bench').run_in_async_scope(noop)",
        2.0,
    ),
]


def describe_path() -> str:
    return "compiled accelerator" if accelerated() else "pure-Python fallback"


def time_statement(statement: str, number: int) -> float:
    """Nanoseconds per execution of ``statement``."""
    timer = timeit.Timer(statement, globals=BENCH_GLOBALS)
    return timer.timeit(number) / number * 1e9


def compare(baseline: str, candidate: str, number: int, repeats: int) -> tuple[float, float, float]:
    """Medians of alternating runs of two statements, and the median of their ratios.

    Each ratio is taken within one pair of neighbouring samples, so a load
    that drifts over the run (a shared machine) moves both of its terms.
    """
    base_times, cand_times = [], []
    for _ in range(repeats):
        base_times.append(time_statement(baseline, number))
        cand_times.append(time_statement(candidate, number))
    ratios = [cand / base for base, cand in zip(base_times, cand_times, strict=True)]
    return statistics.median(base_times), statistics.median(cand_times), statistics.median(ratios)


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


# -- instruction counts (callgrind) -------------------------------------------------

COUNT_RUNS = 2_000


def count_inner() -> None:
    """Under callgrind: for each statement, warm up, then N and 2N executions between markers."""
    statements = ["pass"]
    for _, baseline, candidate, _ in PAIRS:
        statements += [baseline, candidate]
    for statement in statements:
        timer = timeit.Timer(statement, globals=BENCH_GLOBALS)
        timer.timeit(500)
        os.getppid()
        timer.timeit(COUNT_RUNS)
        os.getppid()
        timer.timeit(2 * COUNT_RUNS)
        os.getppid()


def count_instructions(pure: bool) -> list[float]:
    """Instructions per execution of ``pass`` and of each pair's two statements, in order."""
    totals = part_totals([sys.executable, __file__, "--count-inner"], pure=pure)
    counts = per_run(totals, COUNT_RUNS)
    return [count - counts[0] for count in counts]


def print_counts() -> None:
    paths = [False, True] if accelerated() else [True]
    for pure in paths:
        counts = count_instructions(pure)
        print(
            f"CPython {platform.python_version()} on {platform.machine()}, "
            f"{'pure-Python fallback' if pure else 'compiled accelerator'}, "
            "instructions per execution (callgrind, empty statement subtracted)"
        )
        print()
        print("| operation | bare contextvars | async_hooks | ratio | goal |")
        print("|---|---:|---:|---:|---|")
        for index, (label, _, _, goal) in enumerate(PAIRS):
            base, cand = counts[1 + 2 * index], counts[2 + 2 * index]
            ratio = cand / base
            verdict = "(info)" if goal is None or pure else f"<= {goal}"
            if verdict != "(info)":
                verdict += " met" if ratio <= goal else " NOT MET"  # type: ignore[operator]
            print(f"| {label} | {base:.0f} | {cand:.0f} | {ratio:.2f} | {verdict} |")
        print()
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeats", type=int, default=45)
    parser.add_argument(
        "--paths",
        choices=["active", "both"],
        default="active",
        help="both: the table again in a child process with ASYNC_HOOKS_PURE_PYTHON=1",
    )
    parser.add_argument("--no-tasks", action="store_true", help="skip the task-creation table")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions (valgrind) instead"
    )
    parser.add_argument("--count-inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_inner:
        count_inner()
        return
    if args.callgrind:
        print_counts()
        return
    repeats = 9 if args.quick else args.repeats
    number = 50_000 if args.quick else 100_000

    print(
        f"CPython {platform.python_version()} on {platform.machine()}, {describe_path()}, "
        f"{repeats} repeats"
    )
    print()
    print("| operation | bare contextvars (ns) | async_hooks (ns) | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    for label, baseline, candidate, goal in PAIRS:
        base, cand, ratio = compare(baseline, candidate, number, repeats)
        if goal is None or not accelerated():
            verdict = "(info)"
        else:
            verdict = f"<= {goal} {'met' if ratio <= goal else 'NOT MET'}"
        print(f"| {label} | {base:.1f} | {cand:.1f} | {ratio:.2f} | {verdict} |")
    sys.stdout.flush()

    if args.paths == "both" and accelerated():
        print()
        child = [sys.executable, __file__, "--repeats", str(repeats), "--no-tasks"]
        if args.quick:
            child.append("--quick")
        subprocess.run(child, env={**os.environ, "ASYNC_HOOKS_PURE_PYTHON": "1"}, check=True)
    if args.no_tasks:
        return

    print()
    tasks = 20_000 if args.quick else 100_000
    print(f"Creating and awaiting a task, by number of live stores ({tasks} tasks, median):")
    print()
    print("| live stores | ns per task | ratio to 0 stores |")
    print("|---:|---:|---:|")
    counts = (0, 1, 10, 100)
    samples: dict[int, list[float]] = {count: [] for count in counts}
    for _ in range(max(3, repeats // 9)):
        for count in counts:  # interleaved, so drift hits every count alike
            samples[count].append(task_creation_ns(count, tasks))
    base = statistics.median(samples[0])
    for count in counts:
        median = statistics.median(samples[count])
        print(f"| {count} | {median:.0f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
