"""Memory per live tracked resource: pending tasks and scheduled timers, tracked and not.

Each measurement is a fresh process: it creates 20,000 tasks that wait on
one event (or 20,000 ``call_later`` timers an hour away), and reports the
bytes ``tracemalloc`` sees allocated while they are alive, per resource,
with one hook (``init`` and ``destroy`` no-ops) enabled or with none. The
difference is what tracking keeps per live resource: its record, the weak
reference to the object, the index entries. Run:

    .venv/test-3.X/bin/python benchmarks/bench_live_memory.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tracemalloc

COUNT = 20_000
LOOPS = ("asyncio", "uvloop")
KINDS = ("task", "timer")


def noop(*args: object) -> None:
    return None


def measure(kind: str, loop_name: str, tracked: bool) -> float:
    if tracked:
        import async_hooks

        async_hooks.create_hook(init=noop, destroy=noop).enable()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        # Warm up the allocator and the loop's own structures first.
        warm = [loop.call_later(3600, noop) for _ in range(100)]
        for handle in warm:
            handle.cancel()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        if kind == "task":
            held: list[object] = [asyncio.create_task(event.wait()) for _ in range(COUNT)]
            await asyncio.sleep(0)  # every task has run its first step and waits
        else:
            held = [loop.call_later(3600, noop) for _ in range(COUNT)]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        event.set()
        for timer in held:
            if isinstance(timer, asyncio.TimerHandle):
                timer.cancel()
        await asyncio.sleep(0)
        return (after - before) / COUNT

    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "LOOP", "TRACKED"))
    args = parser.parse_args()
    if args.worker:
        kind, loop_name, tracked = args.worker
        print(json.dumps(measure(kind, loop_name, tracked == "1")))
        return
    print(f"CPython {platform.python_version()}: bytes per live resource (tracemalloc)\n")
    print("| resource | loop | untracked | tracked | tracking's own |")
    print("|---|---|---:|---:|---:|")
    for kind in KINDS:
        for loop_name in LOOPS:
            sizes = [
                float(
                    subprocess.run(
                        [sys.executable, __file__, "--worker", kind, loop_name, tracked],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for tracked in ("0", "1")
            ]
            print(
                f"| {kind} | {loop_name} | {sizes[0]:,.0f} | {sizes[1]:,.0f} "
                f"| {sizes[1] - sizes[0]:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
