"""Bytecodes executed per task or callback, by function: where pure-Python tracking spends.

The pure-Python fallback's cost is the interpreter's, so the count of
bytecode instructions each function runs per unit of work says where it
goes more plainly than a C profile, where every Python function is the
same ``_PyEval_EvalFrameDefault``. Counted with ``sys.monitoring``'s
INSTRUCTION events (3.12+), over the ``tasks`` or ``callbacks`` workload of
``bench_runtime.py`` after a warm-up of the same size::

    ASYNC_HOOKS_PURE_PYTHON=1 python benchmarks/profile_bytecodes.py tasks all
    ASYNC_HOOKS_PURE_PYTHON=1 python benchmarks/profile_bytecodes.py callbacks plain

The mode is one of bench_runtime's (``plain``, ``init``, ``destroy``, ``all``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
from collections.abc import Sequence
from types import CodeType

import bench_runtime

UNITS = 500
TOOL_ID = 3  # one of the ids sys.monitoring leaves to tools other than debuggers and profilers


def count_bytecodes(workload: str, mode: str) -> collections.Counter[tuple[str, str]]:
    """Bytecodes run per unit, by (file name, function name)."""
    if sys.version_info < (3, 12):
        raise RuntimeError("sys.monitoring needs Python 3.12 or later")
    monitoring = sys.monitoring
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def on_instruction(code: CodeType, offset: int) -> None:
        counts[(os.path.basename(code.co_filename), code.co_name)] += 1

    bench_runtime.enable_mode(mode, "asyncio")
    chosen = (
        bench_runtime.create_and_await_tasks if workload == "tasks" else bench_runtime.run_callbacks
    )

    async def counted() -> None:
        await chosen(UNITS)
        monitoring.set_events(TOOL_ID, monitoring.events.INSTRUCTION)
        try:
            await chosen(UNITS)
        finally:
            monitoring.set_events(TOOL_ID, 0)

    monitoring.use_tool_id(TOOL_ID, "profile_bytecodes")
    monitoring.register_callback(TOOL_ID, monitoring.events.INSTRUCTION, on_instruction)
    try:
        asyncio.run(counted())
    finally:
        monitoring.register_callback(TOOL_ID, monitoring.events.INSTRUCTION, None)
        monitoring.free_tool_id(TOOL_ID)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("workload", choices=("tasks", "callbacks"))
    parser.add_argument("mode", choices=("plain", "init", "destroy", "all"))
    parser.add_argument("--top", type=int, default=25, help="how many functions to list")
    args = parser.parse_args(argv)
    counts = count_bytecodes(args.workload, args.mode)
    for (filename, function), count in counts.most_common(args.top):
        print(f"{count / UNITS:8.1f}  {filename}:{function}")
    print(f"{sum(counts.values()) / UNITS:8.1f}  in all, per {args.workload[:-1]}")


if __name__ == "__main__":
    main()
