"""``--trace``: a Chrome Trace Event file that real viewers open, valid in every exit."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage
from async_hooks.diagnostics import TraceWriter

from ._browser import open_in_speedscope
from ._programs import load_trace, tool, write

SERVICE = """
import asyncio, threading
from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage(name="request")
user = AsyncLocalStorage(name="user")

class Loud:
    def __repr__(self):
        raise RuntimeError("no repr for you")

async def handle(i):
    user.enter_with(Loud() if i == 0 else "x" * 5000)
    await asyncio.sleep(0.001)
    asyncio.get_running_loop().call_soon(print, "handled", i)
    await asyncio.to_thread(sum, range(10))

async def main():
    await asyncio.gather(*(request.run(f"req-{i}", handle, i) for i in range(3)))

asyncio.run(main())
threading.Thread(target=print, args=("thread",), name="worker").start()
"""


def check_structure(events: list[dict[str, Any]]) -> None:
    """What a viewer relies on: fields, units, pairs, and nesting per thread."""
    begins: dict[int, str] = {}
    flows: dict[int, int] = Counter()
    slices: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for event in events:
        assert {"ph", "pid", "tid"} <= event.keys(), event
        phase = event["ph"]
        if phase != "M":
            assert isinstance(event["ts"], int | float)
            assert event["ts"] >= 0
        if phase == "X":
            assert event["dur"] >= 0
            slices[(event["pid"], event["tid"])].append((event["ts"], event["ts"] + event["dur"]))
        elif phase == "b":
            begins[event["id"]] = event["name"]
        elif phase == "e":
            assert begins.get(event["id"]) == event["name"]  # ends what began, same name
        elif phase == "s":
            flows[event["id"]] += 1
        elif phase == "f":
            assert event["bp"] == "e"
            assert flows[event["id"]] == 1  # every arrow has its start
    for spans in slices.values():
        # Slices on one thread nest or follow each other (never overlap partly).
        open_ends: list[float] = []
        for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
            while open_ends and open_ends[-1] <= start + 0.001:
                open_ends.pop()
            if open_ends:
                assert end <= open_ends[-1] + 0.002, (start, end, open_ends[-1])
            open_ends.append(end)


def test_a_traced_program_gives_slices_flows_lifetimes_and_stores(tmp_path: Path) -> None:
    write(tmp_path / "service.py", SERVICE)
    result = tool(
        "run", "--trace", "t.json", "--store", "request", "--store", "user", "service.py",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("handled") == 3
    events = load_trace(tmp_path / "t.json")
    check_structure(events)
    phases = Counter(event["ph"] for event in events)
    assert {"M", "X", "b", "e", "s", "f", "i"} <= phases.keys()
    names = {event["args"]["name"] for event in events if event["name"] == "thread_name"}
    assert {"MainThread", "worker"} <= names
    steps = [event for event in events if event["ph"] == "X" and event["cat"] == "step"]
    # Named by type and creation site in the user's code.
    assert any(event["name"].startswith("Task service.py:") for event in steps)
    assert any(event["name"].startswith("Handle service.py:15 handle") for event in steps)
    assert any(event["name"].startswith("ExecutorJob") for event in steps)
    assert any(event["name"].startswith("Thread service.py:") for event in steps)
    # Executor jobs run on another thread than the loop.
    assert len({event["tid"] for event in steps}) >= 3
    stored = [event["args"] for event in steps if "request" in event["args"]]
    assert {args["request"] for args in stored} == {"'req-0'", "'req-1'", "'req-2'"}
    users = {args.get("user") for args in stored}
    # A repr that raises is described, not propagated.
    assert any(value and value.startswith("<Loud") for value in users)
    assert all(len(value) <= 1000 for value in users if value)
    assert all({"async_id", "trigger_async_id"} <= event["args"].keys() for event in steps)
    resolves = [event for event in events if event["ph"] == "i" and event["cat"] == "promise"]
    assert resolves


def test_speedscope_opens_the_trace(tmp_path: Path) -> None:
    write(tmp_path / "service.py", SERVICE)
    assert tool("run", "--trace", "t.json", "service.py", cwd=tmp_path).returncode == 0
    dom = open_in_speedscope(tmp_path / "t.json", tmp_path)
    # speedscope names the profile after our process and thread metadata.
    assert "service.py (pid" in dom, dom[-2000:]
    assert "MainThread (tid" in dom
    assert "Something went wrong" not in dom


def test_an_event_costs_a_bounded_number_of_bytes(tmp_path: Path) -> None:
    write(
        tmp_path / "many.py",
        """
        import asyncio
        async def tick(): await asyncio.sleep(0)
        async def main():
            for _ in range(50):
                await asyncio.gather(*(tick() for _ in range(100)))
        asyncio.run(main())
        """,
    )
    assert tool("run", "--trace", "t.json", "many.py", cwd=tmp_path).returncode == 0
    events = load_trace(tmp_path / "t.json")
    size = (tmp_path / "t.json").stat().st_size
    assert len(events) > 30_000
    assert size / len(events) < 200  # docs/tools.md gives the measured figure


def test_the_writer_as_a_context_manager(tmp_path: Path) -> None:
    import asyncio

    request = AsyncLocalStorage[str](name="request-ctx")

    async def main() -> None:
        await request.run("r1", asyncio.sleep, 0)

    with TraceWriter(tmp_path / "t.json", stores=["request-ctx"]) as writer:
        asyncio.run(main())
    assert writer.closed
    events = json.loads((tmp_path / "t.json").read_text())
    check_structure(events)
    assert any(event.get("args", {}).get("request-ctx") == "'r1'" for event in events)
    writer.close()  # a second close does nothing


@pytest.mark.parametrize("ending", ["raise", "exit", "normal"])
def test_the_trace_is_valid_json_however_the_program_ends(tmp_path: Path, ending: str) -> None:
    write(
        tmp_path / "ends.py",
        f"""
        import asyncio, sys
        asyncio.run(asyncio.sleep(0))
        ending = {ending!r}
        if ending == "raise":
            raise RuntimeError("end")
        if ending == "exit":
            sys.exit(9)
        """,
    )
    result = tool("run", "--trace", "t.json", "ends.py", cwd=tmp_path)
    assert result.returncode == {"raise": 1, "exit": 9, "normal": 0}[ending]
    check_structure(load_trace(tmp_path / "t.json"))


def test_forked_children_write_their_own_valid_files(tmp_path: Path) -> None:
    write(
        tmp_path / "forks.py",
        """
        import asyncio, multiprocessing

        def child(n):
            async def main():
                await asyncio.sleep(0.001)
                return n
            print("child", asyncio.run(main()))

        if __name__ == "__main__":
            multiprocessing.set_start_method("fork")
            processes = [multiprocessing.Process(target=child, args=(i,)) for i in range(2)]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            asyncio.run(asyncio.sleep(0))
        """,
    )
    result = tool("run", "--trace", "t.json", "forks.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning" not in result.stderr  # the writer starts no thread
    check_structure(load_trace(tmp_path / "t.json"))
    children = sorted(tmp_path.glob("t.*.json"))
    assert len(children) == 2
    for child in children:
        events = load_trace(child)
        check_structure(events)
        assert any(event["ph"] == "X" and event["cat"] == "step" for event in events)


def test_a_forked_child_that_exits_normally_writes_its_own_trace_and_page(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "forks.py",
        """
        import asyncio, os
        asyncio.run(asyncio.sleep(0))
        pid = os.fork()
        if pid == 0:
            asyncio.run(asyncio.sleep(0.001))
            raise SystemExit(0)
        os.waitpid(pid, 0)
        """,
    )
    result = tool("run", "--trace", "t.json", "--html", "r.html", "forks.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    check_structure(load_trace(tmp_path / "t.json"))
    (child_trace,) = tmp_path.glob("t.*.json")
    check_structure(load_trace(child_trace))
    pid = child_trace.name.split(".")[1]
    assert (tmp_path / f"r.{pid}.html").stat().st_size > 0
    assert (tmp_path / "r.html").stat().st_size > 0
