"""OpenTelemetry's runtime context: ours (a store) side by side with its own contextvars one.

Run with ``scripts/bench benchmarks/bench_otel.py`` (``--quick`` for a fast
look). Both runtime contexts are measured in the same interpreter: each pair
is timed in alternation, ``--repeats`` times, and the table shows medians in
nanoseconds per operation and their ratio. Two levels: the runtime context's
own methods (what ``OTEL_PYTHON_CONTEXT`` swaps), and the API functions
``opentelemetry.context.attach``/``detach``/``get_current`` that the SDK and
instrumentations call, with each runtime plugged in turn into the one
variable those functions read. ``--callgrind`` counts instructions instead
(valgrind's callgrind): exact and repeatable where timings on a shared
machine are not.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import timeit
from typing import Any

import opentelemetry.context as otel_context
from _callgrind import part_totals, per_run
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from async_hooks.integrations.opentelemetry import AsyncHooksRuntimeContext

theirs = ContextVarsRuntimeContext()
ours = AsyncHooksRuntimeContext()
some_context = Context({"key": "value"})

ATTACH_DETACH = "rt.detach(rt.attach(ctx))"
API_ATTACH_DETACH = "detach(attach(ctx))"


def time_statement(statement: str, runtime: Any, number: int, *, api: bool) -> float:
    """Nanoseconds per execution of ``statement`` with ``runtime`` in place."""
    names = {"rt": runtime, "ctx": some_context}
    if api:
        names.update(attach=otel_context.attach, detach=otel_context.detach)
        names["get_current"] = otel_context.get_current
    timer = timeit.Timer(statement, globals=names)
    if api:
        # The API functions read this module global on every call: plugging
        # a runtime in here is what OTEL_PYTHON_CONTEXT does at import.
        saved = otel_context._RUNTIME_CONTEXT
        otel_context._RUNTIME_CONTEXT = runtime
        try:
            return timer.timeit(number) / number * 1e9
        finally:
            otel_context._RUNTIME_CONTEXT = saved
    return timer.timeit(number) / number * 1e9


def compare(statement: str, number: int, repeats: int, *, api: bool) -> tuple[float, float]:
    """Medians of alternating runs of ``statement`` on their runtime and ours."""
    base_times, our_times = [], []
    for _ in range(repeats):
        base_times.append(time_statement(statement, theirs, number, api=api))
        our_times.append(time_statement(statement, ours, number, api=api))
    return statistics.median(base_times), statistics.median(our_times)


ROWS = [
    ("`get_current()`", "rt.get_current()", False),
    ("`attach()` + `detach()`", ATTACH_DETACH, False),
    ("`opentelemetry.context.get_current()`", "get_current()", True),
    ("`opentelemetry.context.attach()` + `detach()`", API_ATTACH_DETACH, True),
]

# -- instruction counts (callgrind) -------------------------------------------------

COUNT_RUNS = 2_000


def count_inner() -> None:
    """Under callgrind: per statement and runtime, warm up, then N and 2N runs between markers."""
    cases: list[tuple[str, Any, bool]] = [("pass", theirs, False)]
    for _, statement, api in ROWS:
        cases += [(statement, theirs, api), (statement, ours, api)]
    for statement, runtime, api in cases:
        time_statement(statement, runtime, 500, api=api)
        os.getppid()
        time_statement(statement, runtime, COUNT_RUNS, api=api)
        os.getppid()
        time_statement(statement, runtime, 2 * COUNT_RUNS, api=api)
        os.getppid()


def count_instructions() -> list[float]:
    """Instructions per run of ``pass``, then of each row's statement on theirs and ours."""
    counts = per_run(part_totals([sys.executable, __file__, "--count-inner"]), COUNT_RUNS)
    return [count - counts[0] for count in counts]


def print_counts() -> None:
    counts = count_instructions()
    print(
        f"CPython {platform.python_version()} on {platform.machine()}, instructions per "
        "operation (callgrind, empty statement subtracted)"
    )
    print()
    print("| operation | ContextVarsRuntimeContext | AsyncHooksRuntimeContext | ratio |")
    print("|---|---:|---:|---:|")
    for index, (label, _, _) in enumerate(ROWS):
        base, cand = counts[1 + 2 * index], counts[2 + 2 * index]
        print(f"| {label} | {base:.0f} | {cand:.0f} | {cand / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--count-inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_inner:
        count_inner()
        return
    if args.callgrind:
        print_counts()
        return
    repeats = 5 if args.quick else args.repeats
    number = 200_000 if args.quick else 1_000_000

    print(f"CPython {platform.python_version()} on {platform.machine()}, {repeats} repeats")
    print()
    print("| operation | ContextVarsRuntimeContext (ns) | AsyncHooksRuntimeContext (ns) | ratio |")
    print("|---|---:|---:|---:|")
    for label, statement, api in ROWS:
        base, cand = compare(statement, number, repeats, api=api)
        print(f"| {label} | {base:.1f} | {cand:.1f} | {cand / base:.2f} |")


if __name__ == "__main__":
    main()
