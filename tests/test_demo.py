"""examples/request_ids.py, Node's request-id example, run as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "request_ids.py"
LOG_LINE = re.compile(r"^\d+: (start|finish)$")


def run_demo(requests: int) -> tuple[int, list[str], str]:
    completed = subprocess.run(
        [sys.executable, str(DEMO), "--requests", str(requests)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log_lines = [line for line in completed.stdout.splitlines() if LOG_LINE.match(line)]
    return completed.returncode, log_lines, completed.stdout + completed.stderr


def test_two_requests_print_node_s_lines_in_node_s_order() -> None:
    status, log_lines, output = run_demo(2)
    assert status == 0, output
    assert log_lines == ["0: start", "1: start", "0: finish", "1: finish"]


@pytest.mark.parametrize("requests", [5])
def test_more_requests_each_log_under_their_own_id(requests: int) -> None:
    status, log_lines, output = run_demo(requests)
    assert status == 0, output
    assert sorted(log_lines) == sorted(
        f"{n}: {what}" for n in range(requests) for what in ("start", "finish")
    )
    # Every request started before any finished: they ran concurrently.
    first_finish = next(i for i, line in enumerate(log_lines) if line.endswith("finish"))
    assert all(line.endswith("start") for line in log_lines[:first_finish])
    assert first_finish == requests
    assert f"ok: each of {requests} concurrent requests" in output
