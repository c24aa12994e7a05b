"""``--why-running``: what keeps a program alive, with its request and the line that started it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from ._programs import interrupt, start, tool, wait_for_line, write

LEAKS_A_TIMER = """
import asyncio, sys
from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage(name="request")

def forgotten():
    print("never runs")

def arm():
    asyncio.get_running_loop().call_later(300, forgotten)  # the leak

async def handle(i):
    await asyncio.sleep(0.001)
    if i == 2:
        arm()

async def main():
    await asyncio.gather(*(request.run(f"req-{i}", handle, i) for i in range(4)))

if "--uvloop" in sys.argv:
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_leaked_timer_is_found_with_its_origin_request_and_causes(
    tmp_path: Path, loop: str
) -> None:
    write(tmp_path / "leaks.py", LEAKS_A_TIMER)
    result = tool("run", "--why-running", "leaks.py", f"--{loop}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = result.stderr
    assert "TimerHandle" in report
    assert "never ran: its event loop was closed" in report
    assert "created at leaks.py:11 arm" in report  # the line that started it
    assert "request='req-2'" in report  # the request it belongs to
    # The chain: the handler's task, created by gather in main, created at top level.
    assert "<- Task" in report
    assert "leaks.py:19 main" in report
    assert report.rstrip().endswith("<- the program's top level")


def test_json_for_machines(tmp_path: Path) -> None:
    write(tmp_path / "leaks.py", LEAKS_A_TIMER)
    result = tool("run", "--why-running", "--format", "json", "leaks.py", cwd=tmp_path)
    report = json.loads(result.stderr)
    (timer,) = [entry for entry in report["resources"] if entry["type"] == "TimerHandle"]
    assert timer["creation_site"] == "leaks.py:11 arm"
    assert timer["stores"] == {"request": "'req-2'"}
    assert isinstance(timer["async_id"], int)
    assert isinstance(timer["age"], float)
    assert timer["chain"][0]["type"] == "Task"
    assert timer["chain"][-1] == {"root": "the program's top level", "async_id": 1}


THREADS = """
import threading, time

def work():
    time.sleep(0.6)

threading.Thread(target=work, name="straggler").start()
threading.Thread(target=work, name="helper", daemon=True).start()
"""


def test_non_daemon_threads_are_listed_before_the_interpreter_waits_for_them(
    tmp_path: Path,
) -> None:
    write(tmp_path / "threads.py", THREADS)
    result = tool("run", "--why-running", "threads.py", cwd=tmp_path)
    assert result.returncode == 0
    assert "1 thing left running" in result.stderr
    assert "named 'straggler'" in result.stderr
    assert "created at threads.py:7 <module>" in result.stderr
    assert "helper" not in result.stderr  # daemon threads do not keep it alive
    assert "async-hooks-" not in result.stderr  # nor do the tools' own threads


def test_a_program_that_outlives_its_main_is_explained_after_the_given_seconds(
    tmp_path: Path,
) -> None:
    write(tmp_path / "threads.py", THREADS)
    result = tool("run", "--why-running-after", "0.2", "threads.py", cwd=tmp_path)
    assert result.returncode == 0
    assert "main returned 0.2 s ago and the program is still running" in result.stderr
    assert "straggler" in result.stderr
    quick = tool("run", "--why-running-after", "5", "threads.py", cwd=tmp_path)
    assert quick.stderr == ""  # it exited before: nothing to explain


def test_a_signal_prints_the_report_while_the_program_runs(tmp_path: Path) -> None:
    write(
        tmp_path / "serves.py",
        """
        import asyncio
        from async_hooks import AsyncLocalStorage
        request = AsyncLocalStorage(name="request")

        async def handle():
            await asyncio.sleep(3600)

        async def main():
            task = asyncio.create_task(request.run("req-9", handle))
            await asyncio.sleep(0)
            print("ready", flush=True)
            await task

        asyncio.run(main())
        """,
    )
    process = start("--why-running", "serves.py", cwd=tmp_path)
    wait_for_line(process, "ready")
    process.send_signal(signal.SIGUSR1)
    assert process.stderr is not None
    lines = [process.stderr.readline()]
    assert "what is running now (SIGUSR1)" in lines[0]
    while "request=" not in lines[-1] and len(lines) < 40:
        lines.append(process.stderr.readline())
    interrupt(process)
    text = "".join(lines)
    assert "awaiting handle() at serves.py:7" in text
    assert "request='req-9'" in text


def test_the_api_reports_without_the_command_line() -> None:
    import asyncio

    from async_hooks import AsyncLocalStorage
    from async_hooks.diagnostics import ResourceHistory, why_running

    request = AsyncLocalStorage[str](name="request-api")
    history = ResourceHistory().enable()
    reports: list[str] = []

    async def handle() -> None:
        asyncio.get_running_loop().call_later(60, print)
        await asyncio.sleep(0)
        reports.append(why_running(history=history, stores=["request-api"]))
        reports.append(why_running(format="json", history=history))

    try:
        asyncio.run(request.run("r-1", handle))
    finally:
        history.disable()
    text, as_json = reports
    assert "TimerHandle" in text
    assert "request-api='r-1'" in text
    assert any(entry["type"] == "TimerHandle" for entry in json.loads(as_json)["resources"])
    with pytest.raises(ValueError, match='"format"'):
        why_running(format="yaml")


def test_the_creation_site_is_the_users_line_when_a_library_made_the_resource(
    tmp_path: Path,
) -> None:
    library = tmp_path / "site-packages"
    library.mkdir()
    write(
        library / "remindlib.py",
        """
        import asyncio

        def remind_later(callback):
            return asyncio.get_running_loop().call_later(300, callback)
        """,
    )
    write(
        tmp_path / "uses_lib.py",
        """
        import asyncio, sys
        sys.path.insert(0, "site-packages")
        import remindlib

        async def main():
            remindlib.remind_later(print)

        asyncio.run(main())
        """,
    )
    result = tool("run", "--why-running", "uses_lib.py", cwd=tmp_path)
    assert "created at uses_lib.py:7 main" in result.stderr
    assert "remindlib" not in result.stderr
