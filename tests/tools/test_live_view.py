"""``ps`` / ``tree``: the live view of a process that serves it, and clear errors otherwise."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from async_hooks._tools._live_view import runtime_directory, socket_path

from ._programs import environment, start, tool, wait_for_line, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="unix sockets")

SERVES = """
import asyncio
from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage(name="request")

async def worker(i):
    await asyncio.sleep(3600)

async def handle(i):
    async with asyncio.TaskGroup() as group:
        group.create_task(worker(i))

async def main():
    print("ready", flush=True)
    await asyncio.gather(*(request.run(f"req-{i}", handle, i) for i in range(2)))

asyncio.run(main())
"""


@pytest.fixture
def private_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


def _serving(
    tmp_path: Path, source: str = SERVES, *options: str
) -> tuple[int, subprocess.Popen[str]]:
    write(tmp_path / "serves.py", source)
    process = start("--live", *options, "serves.py", cwd=tmp_path)
    wait_for_line(process, "ready")
    deadline = time.monotonic() + 10
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "async-hooks" / f"{process.pid}.sock"
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.pid, process


def test_ps_and_tree_show_tasks_with_their_requests(
    tmp_path: Path, private_runtime_dir: Path
) -> None:
    pid, process = _serving(tmp_path)
    try:
        listing = tool("ps", cwd=tmp_path)
        assert listing.returncode == 0
        assert str(pid) in listing.stdout
        assert "serves.py" in listing.stdout

        table = tool("ps", str(pid), cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        worker_rows = [line for line in table.stdout.splitlines() if "serves.py:12 handle" in line]
        assert len(worker_rows) == 2  # the two workers, created by their handlers
        assert {"request='req-0'", "request='req-1'"} <= set(table.stdout.split())
        assert "awaiting worker() at serves.py:8" in table.stdout
        assert "TimerHandle" in table.stdout

        tree = tool("tree", str(pid), cwd=tmp_path)
        assert tree.returncode == 0, tree.stderr
        lines = tree.stdout.splitlines()
        handler = next(
            i for i, line in enumerate(lines) if "serves.py:16 main {request='req-0'}" in line
        )
        worker = next(
            i for i, line in enumerate(lines) if "serves.py:12 handle {request='req-0'}" in line
        )
        # The worker sits under the handler that created it, one level deeper.
        indent = len(lines[handler]) - len(lines[handler].lstrip())
        assert worker > handler
        assert len(lines[worker]) - len(lines[worker].lstrip()) > indent
    finally:
        process.kill()
        process.communicate()


def test_the_socket_is_owner_only_whatever_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "open"
    runtime.mkdir()
    os.chmod(runtime, 0o777)  # a careless runtime dir
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    pid, process = _serving(tmp_path)
    try:
        path = runtime / "async-hooks" / f"{pid}.sock"
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE((runtime / "async-hooks").stat().st_mode) == 0o700
    finally:
        process.kill()
        process.communicate()


def test_without_xdg_runtime_dir_an_owner_only_temp_folder_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    folder = Path(runtime_directory())
    assert folder.parent == tmp_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert socket_path(123) == str(folder / "123.sock")


def test_a_stopped_process_gives_an_error_naming_it_quickly(
    tmp_path: Path, private_runtime_dir: Path
) -> None:
    pid, process = _serving(tmp_path)
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        result = tool("tree", str(pid), "--timeout", "1", cwd=tmp_path)
        assert time.monotonic() - began < 10
        assert result.returncode == 1
        assert str(pid) in result.stderr
        assert "stopped" in result.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
        process.kill()
        process.communicate()


def test_a_dead_or_unserving_process_gives_an_error_naming_it(
    tmp_path: Path, private_runtime_dir: Path
) -> None:
    pid, process = _serving(tmp_path)
    process.kill()
    process.communicate()
    dead = tool("ps", str(pid), cwd=tmp_path)
    assert dead.returncode == 1
    assert f"{pid}" in dead.stderr
    assert "exited" in dead.stderr or "no process" in dead.stderr
    # Its stale socket is gone from the listing.
    assert str(pid) not in tool("ps", cwd=tmp_path).stdout
    unserving = tool("ps", str(os.getpid()), cwd=tmp_path)
    assert unserving.returncode == 1
    assert f"process {os.getpid()} does not serve a live view" in unserving.stderr


def test_one_call_in_the_program_serves_it(tmp_path: Path, private_runtime_dir: Path) -> None:
    source = SERVES.replace(
        "import asyncio\n",
        "import asyncio\nfrom async_hooks.diagnostics import serve_live\nserve_live()\n",
        1,
    )
    write(tmp_path / "own.py", source)
    process = subprocess.Popen(
        [sys.executable, "own.py"], cwd=tmp_path, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_line(process, "ready")
        time.sleep(0.2)
        table = tool("ps", str(process.pid), cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        assert "request='req-1'" in table.stdout
    finally:
        process.kill()
        process.communicate()
