"""Soak: a million short-lived tasks, tracked by an enabled hook, leave no memory behind.

Runs the tasks in batches (each awaits once, so every task gets init, two
steps, promise_resolve and destroy) and prints the resident set size and
the number of live tracked resources after warming up and after every
tenth of the run, then the growth. Growth should stay flat (allocator noise
of a few hundred kB at most) however many tasks run.

    .venv/test-3.13/bin/python benchmarks/soak_tracked_tasks.py
        [--tasks N] [--loop uvloop] [--untracked]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from collections.abc import Callable

from async_hooks import create_hook
from async_hooks._runtime import _live

BATCH = 1_000


def resident_kib() -> int:
    """The process's resident set size, in KiB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


async def tiny() -> None:
    await asyncio.sleep(0)


async def run_batches(count: int) -> None:
    for _ in range(count // BATCH):
        await asyncio.gather(*(tiny() for _ in range(BATCH)))


def soak(tasks: int, loop_factory: Callable[[], asyncio.AbstractEventLoop], tracked: bool) -> int:
    events = {"init": 0, "destroy": 0}

    def on_init(async_id: int, type: str, trigger: int, resource: object) -> None:
        events["init"] += 1

    def on_destroy(async_id: int) -> None:
        events["destroy"] += 1

    hook = create_hook(init=on_init, destroy=on_destroy)
    if tracked:
        hook.enable()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(run_batches(20 * BATCH))  # warm-up: free lists, caches
            gc.collect()
            baseline = resident_kib()
            print(f"after warm-up: rss {baseline} KiB, live tracked {len(_live.live_resources)}")
            started = time.perf_counter()
            tenth = max(tasks // 10, BATCH)
            done = 0
            after_first_tenth = baseline
            while done < tasks:
                runner.run(run_batches(tenth))
                done += tenth
                gc.collect()
                rss = resident_kib()
                if done == tenth:
                    after_first_tenth = rss
                print(
                    f"{done:>9} tasks: rss {rss} KiB, "
                    f"live tracked {len(_live.live_resources)}, "
                    f"{time.perf_counter() - started:.1f}s"
                )
            end = resident_kib()
    finally:
        hook.disable()
    print(f"events: {events['init']} init, {events['destroy']} destroy")
    kind = "tracked" if tracked else "untracked"
    print(f"memory growth over {done} {kind} tasks: {end - baseline} KiB in all,")
    print(f"  {end - after_first_tenth} KiB after the first tenth (the allocator's pools settle)")
    return end - after_first_tenth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--untracked",
        action="store_true",
        help="the same run with no hook enabled, to tell the interpreter's growth from ours",
    )
    options = parser.parse_args()
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if options.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    soak(options.tasks, factory, tracked=not options.untracked)


if __name__ == "__main__":
    main()
