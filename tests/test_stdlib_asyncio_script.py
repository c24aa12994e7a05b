"""scripts/stdlib_asyncio.py's verdict, from made-up regrtest output (no regrtest run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "stdlib_asyncio.py"


@pytest.fixture(scope="module")
def judge() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stdlib_asyncio", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is made.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


HUNG_RERUN = """\
0:00:40 load avg: 2.0 [2/2/1] test_asyncio.test_events worker non-zero exit code (Exit code 1)
Re-running test_asyncio.test_events in verbose mode
test_a (test.test_asyncio.test_events.Case.test_a) ... ok
test_b (test.test_asyncio.test_events.Case.test_b) ... ERROR
Timeout (0:01:00)!
Thread 0x00007f (most recent call first):
  File "/x/case.py", line 597 in _callCleanup
"""

HUNG_AT_EXIT = """\
0:00:40 load avg: 2.0 [2/2/1] test_asyncio.test_events timed out (2 min 15 sec)
test_a (test.test_asyncio.test_events.Case.test_a) ... ok
test_b (test.test_asyncio.test_events.Case.test_b) ... ERROR
======================================================================
ERROR: test_b (test.test_asyncio.test_events.Case.test_b)
----------------------------------------------------------------------
Ran 2 tests in 1.0s
Timeout (0:02:00)!
"""


def test_the_test_running_at_a_timeout_is_the_one_that_hung(judge: Any) -> None:
    output = judge._last_output(
        "0:00:01 [1/2] test_asyncio.test_tasks passed\n" + HUNG_RERUN, "test_asyncio.test_events"
    )

    assert judge._last_started(output) == "test.test_asyncio.test_events.Case.test_b"
    assert not judge._RAN.search(judge._before_dump(output))


def test_a_worker_that_hangs_after_its_tests_keeps_their_outcomes(judge: Any) -> None:
    output = judge._last_output(HUNG_AT_EXIT, "test_asyncio.test_events")

    assert judge._RAN.search(judge._before_dump(output))
    assert judge._verbose_outcomes(output) == {
        "test.test_asyncio.test_events.Case.test_a": ["passed"],
        "test.test_asyncio.test_events.Case.test_b": ["failed"],
    }


def test_module_states_are_the_last_printed(judge: Any, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "0:00:01 load avg: 1.0 [ 1/2/1] test_asyncio.test_tasks failed (8 failures)\n"
        "0:00:02 load avg: 1.0 [ 2/2/1] test_asyncio.test_ssl passed -- running (1): x (3 sec)\n"
        "0:00:03 load avg: 1.0 [1/1] test_asyncio.test_tasks passed\n"
    )

    assert judge.read_module_states(log) == {
        "test_asyncio.test_tasks": "passed",
        "test_asyncio.test_ssl": "passed",
    }


def run(judge: Any, mode: str, outcomes: dict[str, list[str]], **states: str) -> Any:
    module_states = {name.replace("__", "."): state for name, state in states.items()}
    return judge.Run(mode, 1.0, outcomes, module_states, 0, Path(f"{mode}.log"))


def test_only_tests_failing_every_tracked_attempt_and_never_plain_count(judge: Any) -> None:
    plain = run(
        judge,
        "plain",
        {"test.m.A.always": ["passed"], "test.m.A.plain_too": ["failed", "passed"]},
        test_asyncio__test_lost="timed out (1 min)",
    )
    tracked = run(
        judge,
        "tracked",
        {
            "test.m.A.always": ["failed", "failed"],
            "test.m.A.flaky": ["failed", "passed"],
            "test.m.A.plain_too": ["failed", "failed"],
            "test.test_asyncio.test_lost.A.x": ["failed"],
        },
        test_asyncio__test_events="hung after its tests ran: timed out (2 min)",
    )
    verdict = judge.Verdict("3.x", plain, tracked)

    assert verdict.only_tracked == [
        "test.m.A.always",
        "test_asyncio.test_events (whole module: hung after its tests ran: timed out (2 min))",
    ]
    assert verdict.flaky_tracked == ["test.m.A.flaky"]
    assert verdict.failing_plain == [
        "test.m.A.plain_too",
        "test_asyncio.test_lost (whole module: timed out (1 min))",
    ]
