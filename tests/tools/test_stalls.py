"""``--stalls MS``: each step that blocks the loop, where it blocked, and whose request it was."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from async_hooks import AsyncLocalStorage
from async_hooks.diagnostics import Stall, StallDetector

from ._programs import load_trace, tool, write

BLOCKS = """
import asyncio, sys, time
from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage(name="request")

def crunch():
    time.sleep(0.2)  # blocks the loop

async def handle(i):
    await asyncio.sleep(0.01)
    if i == 1:
        crunch()

async def main():
    await asyncio.gather(*(request.run(f"req-{i}", handle, i) for i in range(3)))

if "--uvloop" in sys.argv:
    import uvloop
    uvloop.run(main())
elif "--trio" in sys.argv:
    import trio

    async def trio_handle(i):
        await trio.sleep(0.01)
        if i == 1:
            crunch()

    async def trio_main():
        async with trio.open_nursery() as nursery:
            for i in range(3):
                request.run(f"req-{i}", nursery.start_soon, trio_handle, i)

    trio.run(trio_main)
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_a_stall_names_the_request_and_the_blocking_line(tmp_path: Path, loop: str) -> None:
    write(tmp_path / "blocks.py", BLOCKS)
    result = tool("run", "--stalls", "100", "--trace", "t.json", "blocks.py", f"--{loop}",
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # On a loaded machine another step may be descheduled past the threshold
    # too: look for the crunching one.
    (report,) = [
        stall for stall in result.stderr.split("async-hooks: stall:")[1:] if "crunch" in stall
    ]
    assert "request='req-1'" in report
    assert 'File "blocks.py", line 8, in crunch' in report  # sampled while it blocked
    assert "time.sleep(0.2)" in report
    duration = float(report.split(" for ", 1)[1].split(" ms", 1)[0])
    assert 190 <= duration < 2000
    (stall,) = [
        event
        for event in load_trace(tmp_path / "t.json")
        if event.get("cat") == "stall" and "crunch" in event["args"]["stack"]
    ]
    assert stall["ph"] == "X"
    assert stall["args"]["request"] == "'req-1'"
    assert "crunch" in stall["args"]["stack"]
    assert 190_000 <= stall["dur"] < 2_000_000


def test_no_stall_no_report(tmp_path: Path) -> None:
    write(tmp_path / "fine.py", "import asyncio\nasyncio.run(asyncio.sleep(0.05))\n")
    result = tool("run", "--stalls", "500", "fine.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_threads_and_executor_jobs_may_run_long(tmp_path: Path) -> None:
    write(
        tmp_path / "pools.py",
        """
        import asyncio, threading, time
        async def main():
            await asyncio.to_thread(time.sleep, 0.8)
        thread = threading.Thread(target=time.sleep, args=(0.8,))
        thread.start()
        asyncio.run(main())
        thread.join()
        """,
    )
    result = tool("run", "--stalls", "400", "pools.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_detector_as_an_api() -> None:
    request = AsyncLocalStorage[str](name="request-stall")
    found: list[Stall] = []

    async def handle() -> None:
        await asyncio.sleep(0)
        time.sleep(0.3)

    with StallDetector(150, on_stall=found.append) as detector:
        asyncio.run(request.run("r-7", handle))
    (stall,) = [stall for stall in found if any("time.sleep(0.3)" in line for line in stall.stack)]
    assert stall.stores == {"request-stall": "'r-7'"}
    assert stall.type == "Task"
    assert stall.duration >= 0.3
    assert stall in detector.stalls
    assert "blocked the event loop" in stall.format()


@pytest.mark.parametrize("threshold", [0, -1, "10", True])
def test_a_bad_threshold_is_named(threshold: object) -> None:
    with pytest.raises((TypeError, ValueError), match='"threshold_ms"'):
        StallDetector(threshold)  # type: ignore[arg-type]
