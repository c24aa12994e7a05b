"""The private async_hooks._track_everything: importing it tracks the whole interpreter.

scripts/stdlib-asyncio imports it from a .pth file in every interpreter of a
tracked run; each test here starts a fresh one, since the import has a side effect.
"""

from __future__ import annotations

import subprocess
import sys


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
