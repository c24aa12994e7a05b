"""The private async_hooks._track_everything: importing it tracks the whole interpreter.

scripts/stdlib-asyncio imports it from a .pth file in every interpreter of a
tracked run; each test here starts a fresh one, since the import has a side effect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_it_enables_one_hook_with_every_callback() -> None:
    code = (
        "import async_hooks._track_everything as t, async_hooks._runtime as r; "
        "print(t.hook.enabled, r.is_tracking(), t.hook)"
    )

    assert run_python(code) == (
        "True True <AsyncHook enabled (init, before, after, destroy, promise_resolve)>"
    )


def test_a_program_runs_tracked_and_unchanged() -> None:
    code = """
import asyncio
import async_hooks._track_everything

async def main():
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, 2)
    values = await asyncio.gather(asyncio.sleep(0, 1), future, asyncio.to_thread(int, "3"))
    return sum(values), type(asyncio.current_task().get_coro()).__name__

print(*asyncio.run(main()))
"""

    # The program computes what it computes untracked, and sees its own coroutine.
    assert run_python(code) == "6 coroutine"


def test_with_a_check_dir_it_checks_and_writes_what_broke_at_exit(tmp_path: Path) -> None:
    code = """
import async_hooks._track_everything
from async_hooks import AsyncResource
resource = AsyncResource("Broken")
resource.emit_destroy()
resource.run_in_async_scope(print, end="")  # a before after the destroy
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ASYNC_HOOKS_CHECK_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    (written,) = tmp_path.glob("*.txt")
    head, *violations = written.read_text().splitlines()
    assert head == "1 violation(s) in: -c"
    (violation,) = violations
    assert violation.startswith("before(")
    assert violation.endswith("): before after its destroy")


def test_without_violations_nothing_is_written(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import asyncio, async_hooks._track_everything\n"
         "asyncio.run(asyncio.sleep(0))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ASYNC_HOOKS_CHECK_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
