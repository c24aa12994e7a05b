"""The cross-service example runs end to end: one request id in three processes' logs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RUN_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cross_service" / "run.py"


def test_one_request_id_reaches_both_services_and_the_worker() -> None:
    finished = subprocess.run(
        [sys.executable, str(RUN_SCRIPT)], capture_output=True, text=True, timeout=90
    )
    output = finished.stdout
    assert finished.returncode == 0, output + finished.stderr
    match = re.search(r"^request id: ([0-9a-f]{32})$", output, re.MULTILINE)
    assert match is not None, output
    tag = f"[{match.group(1)}] customer=alice"
    for service in ("frontend", "inventory", "worker"):
        lines = [line for line in output.splitlines() if line.startswith(service)]
        assert any(tag in line for line in lines), (service, output)
    # The worker's own lines outside the task carry no id: nothing leaked.
    worker_lines = [line for line in output.splitlines() if line.startswith("worker")]
    assert any("[-]" in line and "ready" in line for line in worker_lines), output
