"""Run real child programs under the tool and under plain python, to compare them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

TIMEOUT = 60

# The child must find this checkout's package even when run from tmp_path.
_SRC = str(Path(__file__).resolve().parents[2] / "src")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def tool(
    *args: str | Path, cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``python -m async_hooks ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "async_hooks", *map(str, args)],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def python(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Plain ``python ARGS`` in ``cwd``: what the tool must behave like."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start(*args: str | Path, cwd: Path, tool_run: bool = True) -> subprocess.Popen[str]:
    """Start the program (under ``run`` when ``tool_run``) with pipes, without waiting."""
    command = [sys.executable, "-m", "async_hooks", "run", *map(str, args)]
    if not tool_run:
        command = [sys.executable, *map(str, args)]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float = 30) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if expected in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"the program never printed {expected!r}")


def interrupt(process: subprocess.Popen[str], number: int = signal.SIGINT) -> tuple[str, str]:
    process.send_signal(number)
    out, err = process.communicate(timeout=TIMEOUT)
    return out, err


def load_trace(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as file:
        events = json.load(file)
    assert isinstance(events, list)
    return events
