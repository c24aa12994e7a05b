"""Instruction counts with valgrind's callgrind, for the benchmarks that want exact numbers.

The measured program calls ``os.getppid()`` (:data:`MARKER`, a libc call
nothing else in these programs makes) between the parts to count;
callgrind dumps its counters before each call, so each part's instructions
come out separately, repeatable on a loaded machine where timings are not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

MARKER = "getppid"


def part_totals(command: Sequence[str], *, pure: bool | None = None) -> list[int]:
    """Run ``command`` under callgrind; the instructions of each part, in order.

    ``pure`` runs it on the pure-Python fallback (``ASYNC_HOOKS_PURE_PYTHON=1``)
    or on the accelerator; None leaves the choice to the environment.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--callgrind needs valgrind on PATH")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pure is not None:
        env.pop("ASYNC_HOOKS_PURE_PYTHON", None)
        if pure:
            env["ASYNC_HOOKS_PURE_PYTHON"] = "1"
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory, "callgrind.out")
        subprocess.run(
            [valgrind, "--tool=callgrind", f"--dump-before={MARKER}",
             f"--callgrind-out-file={out}", *command],
            env=env, check=True, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        parts = sorted(Path(directory).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        return [_total(part) for part in parts]


def per_run(totals: Sequence[int], runs: int) -> list[float]:
    """Instructions per run of each statement counted as warm-up, N runs, 2N runs.

    Each statement makes three parts: what came before its first marker
    (startup or the previous statement's end, and its warm-up), N runs and
    2N runs; the difference of the last two, over N, is one run's cost.
    """
    return [
        (totals[index + 2] - totals[index + 1]) / runs for index in range(0, len(totals) - 2, 3)
    ]


def _total(part: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", part.read_text(), re.MULTILINE)
    assert match is not None, part
    return int(match.group(1))
