"""What the tools of ``python -m async_hooks run`` cost, and how big their files are.

Run with ``scripts/bench benchmarks/bench_tools.py`` (``--quick`` for a fast
look). The workload is the task-heavy one of bench_runtime.py: 100,000
tasks created and awaited 1,000 at a time, each yielding to the loop once,
each in a request scope of its own (``AsyncLocalStorage.run``), on the
stdlib loop. Every timing is a fresh process; what is compared is the CPU
time (user + system, all threads, so the trace writer's thread counts) the
process spends on the workload, median of the repeats, the modes
alternating within each repeat:

* ``untracked``: python, no hook enabled (so no tracking);
* ``tracked``: python, the program enables one no-op hook with every
  callback (tracking on, in-process, no tool);
* ``run``: ``python -m async_hooks run`` with no option (the history the
  reports need, and the watch on closing loops);
* ``run + no-op step hook``: the same, the program adding a no-op
  ``before``/``after`` hook: what dispatching step events costs, which
  ``--stalls`` and ``--trace`` both pay once (docs/benchmarks.md);
* ``run --stalls``, ``run --trace``, and everything at once.

Then: the trace's events and bytes per event, the start-up cost of ``run``
on an empty script, and the load time in headless Chromium of the HTML
report of a trace of about 100,000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORKLOAD = """
import asyncio, sys, time

def main(tasks):
    import async_hooks
    noop = lambda *args: None
    if "--hook" in sys.argv:
        async_hooks.create_hook(init=noop, before=noop, after=noop, destroy=noop,
                                promise_resolve=noop).enable()
    if "--step-hook" in sys.argv:
        async_hooks.create_hook(before=noop, after=noop).enable()
    from async_hooks import AsyncLocalStorage
    request = AsyncLocalStorage(name="request")

    async def one():
        await asyncio.sleep(0)

    async def batch(start):
        await asyncio.gather(*(request.run(f"req-{start + i}", one) for i in range(1000)))

    async def run():
        for start in range(0, tasks, 1000):
            await batch(start)

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run())
    print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}))

import json
main(int(sys.argv[-1]))
"""


def _modes(trace: Path) -> dict[str, list[str]]:
    tool = [sys.executable, "-m", "async_hooks", "run"]
    return {
        "untracked": [sys.executable, "{script}"],
        "tracked": [sys.executable, "{script}", "--hook"],
        "run": [*tool, "{script}"],
        "run + no-op step hook": [*tool, "{script}", "--step-hook"],
        "run --stalls 100": [*tool, "--stalls", "100", "{script}"],
        "run --trace": [*tool, "--trace", str(trace), "--store", "request", "{script}"],
        "run --trace --stalls --why-running": [
            *tool, "--trace", str(trace), "--store", "request", "--stalls", "100",
            "--why-running", "{script}",
        ],
    }  # fmt: skip


def _time(command: list[str], tasks: int, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [*command, str(tasks)], capture_output=True, text=True, env=env, check=True, timeout=900
    )
    line = [line for line in result.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(line)  # type: ignore[no-any-return]


def bench_modes(tasks: int, repeats: int, work: Path) -> dict[str, float]:
    script = work / "workload.py"
    script.write_text(WORKLOAD)
    trace = work / "bench.trace.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    modes = _modes(trace)
    commands = {
        name: [part.format(script=script) for part in command] for name, command in modes.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for name in modes:  # warm-up: compile, disk caches
        _time(commands[name], min(tasks, 5000), env)
    names = list(modes)
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            samples[name].append(_time(commands[name], tasks, env)["cpu"])
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\n## CPU seconds for {tasks:,} tasks (median of {repeats})")
    print("| mode | CPU s | vs untracked | vs tracked | vs run | vs run + step hook |")
    print("|---|---|---|---|---|---|")
    step = medians["run + no-op step hook"]
    for name, value in medians.items():
        print(
            f"| `{name}` | {value:.3f} | {value / medians['untracked']:.2f}x | "
            f"{value / medians['tracked']:.3f}x | {value / medians['run']:.3f}x | "
            f"{value / step:.3f}x |"
        )
    # One more traced run, to count what it wrote.
    _time(commands["run --trace"], tasks, env)
    with open(trace, encoding="utf-8") as file:
        events = len(json.load(file))
    size = trace.stat().st_size
    per_event = (medians["run --trace"] - medians["run"]) / events * 1e6
    print(f"\ntrace: {events:,} events, {size:,} bytes: {size / events:.0f} bytes per event, ")
    print(f"{per_event:.2f} us of CPU per event on top of `run` ({events / tasks:.1f} per task)")
    return medians


def bench_stalls_in_process(tasks: int, repeats: int) -> None:
    """The stall detector's own cost, alternating with it on and off in one process.

    Fresh processes add their start-up noise to a difference of a few
    percent; here the same process runs the workload with a no-op step hook
    (the dispatch every step tool pays) and with the detector added.
    """
    import async_hooks
    from async_hooks import AsyncLocalStorage
    from async_hooks.diagnostics import ResourceHistory, StallDetector

    request = AsyncLocalStorage[str](name="request")

    async def one() -> None:
        await asyncio.sleep(0)

    async def work() -> None:
        for start in range(0, tasks, 1000):
            await asyncio.gather(*(request.run(f"req-{start + i}", one) for i in range(1000)))

    def measure() -> float:
        began = time.process_time()
        asyncio.run(work())
        return time.process_time() - began

    def noop(async_id: int) -> None:
        pass

    history = ResourceHistory().enable()
    steps = async_hooks.create_hook(before=noop, after=noop).enable()
    without: list[float] = []
    with_detector: list[float] = []
    try:
        measure()  # warm-up
        for _ in range(repeats):
            without.append(measure())
            with StallDetector(1000):
                with_detector.append(measure())
    finally:
        steps.disable()
        history.disable()
    base, detector = statistics.median(without), statistics.median(with_detector)
    print(f"\n## --stalls in one process, {tasks:,} tasks, median of {repeats} alternating runs")
    print(f"- run's hooks + a no-op step hook: {base:.3f} CPU s")
    print(f"- the same + StallDetector(1000): {detector:.3f} CPU s ({detector / base - 1:+.1%})")


def bench_startup(repeats: int, work: Path) -> None:
    empty = work / "empty.py"
    empty.write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    timings: dict[str, list[float]] = {"python empty.py": [], "run empty.py": []}
    commands = {
        "python empty.py": [sys.executable, str(empty)],
        "run empty.py": [sys.executable, "-m", "async_hooks", "run", str(empty)],
    }
    for _ in range(repeats):
        for name, command in commands.items():
            began = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            timings[name].append(time.perf_counter() - began)
    print("\n## start-up, wall seconds (median)")
    for name, values in timings.items():
        print(f"- `{name}`: {statistics.median(values) * 1000:.0f} ms")


def bench_html(work: Path, target_events: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.tools._browser import open_page

    from async_hooks.diagnostics import write_html_report

    script = work / "workload.py"
    trace = work / "html.trace.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    tasks = 1000
    events = 0
    while True:
        subprocess.run(
            [sys.executable, "-m", "async_hooks", "run", "--trace", str(trace), "--store",
             "request", str(script), str(tasks)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        with open(trace, encoding="utf-8") as file:
            events = len(json.load(file))
        if events >= target_events * 0.95:
            break
        tasks = int(tasks * target_events / events) // 1000 * 1000 + 1000
    page = work / "report.html"
    began = time.perf_counter()
    write_html_report(trace, page)
    written = time.perf_counter() - began

    async def load() -> tuple[float, float]:
        browser = await open_page(work / "chromium-profile")
        try:
            await browser.open(page.as_uri())
            render = float(await browser.evaluate("document.body.dataset.renderMs"))
            total = float(
                await browser.evaluate(
                    "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                )
            )
            assert browser.errors == [], browser.errors
            return render, total
        finally:
            await browser.close()

    render, loaded = asyncio.run(load())
    print(f"\n## HTML report of a {events:,}-event trace ({tasks:,} tasks)")
    print(f"- written in {written * 1000:.0f} ms, {page.stat().st_size / 1e6:.1f} MB")
    print(f"- in headless Chromium: DOMContentLoaded at {loaded:.0f} ms after navigation,")
    print(f"  of which the page's script (parse the data, lay out, draw) {render:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and repeats")
    parser.add_argument("--skip-html", action="store_true", help="no Chromium measurement")
    options = parser.parse_args()
    tasks, repeats = (20_000, 3) if options.quick else (100_000, 5)
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        bench_modes(tasks, repeats, work)
        bench_stalls_in_process(tasks // 10, 21 if not options.quick else 7)
        bench_startup(repeats * 2, work)
        if not options.skip_html:
            bench_html(work, 100_000)


if __name__ == "__main__":
    main()
