"""Judge runtime tracking by CPython's own test_asyncio: list the tests that fail only when tracked.

Each interpreter's regrtest runs test_asyncio twice in the same venv, plain and then
tracked (ASYNC_HOOKS_TRACK_ALL=1, which a ``.pth`` file turns into one enabled hook in
every interpreter of the run). Use it through ``scripts/stdlib-asyncio``, which makes the
venvs; by hand: ``python scripts/stdlib_asyncio.py .venv/stdlib-3.12/bin/python``.
See docs/stdlib-asyncio.md.

Exits 1 when a test fails only when tracked on any interpreter (0 with --report-only),
2 when a run gave no results at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

TRACK_VARIABLE = "ASYNC_HOOKS_TRACK_ALL"
# With --check-events: the tracking hook is an EventChecker, and every
# interpreter that saw a rule broken writes it into this directory at exit.
CHECK_DIR_VARIABLE = "ASYNC_HOOKS_CHECK_DIR"
# Every process of one run inherits this, which is how its leftovers are found
# afterwards: regrtest starts each worker in a session of its own, so the run's
# process group holds neither the workers nor the pools their tests start.
RUN_MARKER_VARIABLE = "ASYNC_HOOKS_STDLIB_RUN"

PTH_NAME = "async_hooks_track_all.pth"
# Sorted after setuptools' __editable__ .pth (site reads them in name order),
# so async_hooks is importable when this line runs. Without the variable it
# imports nothing but os, which site has already imported.
PTH_LINE = (
    f'import os; os.environ.get("{TRACK_VARIABLE}") == "1"'
    ' and __import__("async_hooks._track_everything")\n'
)

# The module states regrtest prints after "[ n/N] name" that mean its junit
# results are missing or cut short: the worker died with them.
_BROKEN_MODULE = re.compile(
    r"timed out|crashed|worker non-zero exit code|worker bug|uncaught exception|interrupted"
    # isolate_hangs's own state, for a module whose tests ended but whose worker then hung.
    r"|hung"
)
_PROGRESS = re.compile(r"\[\s*\d+/\d+(?:/\d+)?\] (test\S+) (.+)$")
# unittest's verbose line for a test that starts: "test_x (test.test_m.Case.test_x) ..."
_STARTED = re.compile(r"^\w+ \((test\.[\w.]+)\)", re.MULTILINE)
# ... and its report of each test that did not pass, after they all ran.
_FAILED = re.compile(r"^(?:FAIL|ERROR): \w+ \((test\.[\w.]+)\)", re.MULTILINE)
_RAN = re.compile(r"^Ran \d+ tests? in ", re.MULTILINE)
# Hung tests looked for per module before giving up on it.
_MAX_HUNG = 5


@dataclasses.dataclass
class Run:
    """One regrtest run: its wall time, each test's outcomes and each module's last state."""

    mode: str
    seconds: float
    # A test rerun by --rerun has one outcome per attempt: "passed", "failed" or "skipped".
    outcomes: dict[str, list[str]]
    module_states: dict[str, str]
    leftovers_killed: int
    log: Path
    # Tests that hung or crashed their worker, found by isolate_hangs, and the
    # time that took (not part of ``seconds``).
    hung: list[str] = dataclasses.field(default_factory=list)
    isolation_seconds: float = 0.0

    def failed_finally(self) -> set[str]:
        return {name for name, seen in self.outcomes.items() if set(seen) == {"failed"}}

    def failed_ever(self) -> set[str]:
        return {name for name, seen in self.outcomes.items() if "failed" in seen}

    def broken_modules(self) -> set[str]:
        return {name for name, state in self.module_states.items() if _BROKEN_MODULE.search(state)}

    def env_changed_modules(self) -> set[str]:
        return {name for name, state in self.module_states.items() if "env changed" in state}

    def describe(self, names: Iterable[str]) -> list[str]:
        described = []
        for name in sorted(names):
            if name in self.hung:
                described.append(f"{name} (hung or crashed its worker)")
            elif name in self.module_states:
                described.append(f"{name} (whole module: {self.module_states[name]})")
            else:
                described.append(name)
        return described


@dataclasses.dataclass
class Verdict:
    version: str
    plain: Run
    tracked: Run

    def _failing_plain(self) -> set[str]:
        # A test that failed plain even once is no evidence against tracking,
        # nor is any test of a module whose plain results were lost.
        return self.plain.failed_ever() | self.plain.broken_modules()

    @property
    def only_tracked(self) -> list[str]:
        failing = self.tracked.failed_finally() | self.tracked.broken_modules()
        excluded = self._failing_plain()
        return self.tracked.describe(
            name for name in failing if name not in excluded and not _in_any(name, excluded)
        )

    @property
    def flaky_tracked(self) -> list[str]:
        tests = self.tracked.failed_ever() - self.tracked.failed_finally()
        return self.tracked.describe(tests - self._failing_plain())

    @property
    def failing_plain(self) -> list[str]:
        return self.plain.describe(self._failing_plain())

    @property
    def env_changed_tracked(self) -> list[str]:
        return sorted(self.tracked.env_changed_modules() - self.plain.env_changed_modules())

    @property
    def ratio(self) -> float:
        return self.tracked.seconds / self.plain.seconds


def _in_any(test_id: str, modules: Iterable[str]) -> bool:
    """Whether the test (test.test_asyncio.test_tasks.Case.test_x) is in one of the modules."""
    return any(test_id.startswith(f"test.{module}.") for module in modules)


# -- the venv ------------------------------------------------------------------


def install_pth(python: str) -> str:
    """Put the tracking .pth file into python's venv; returns the interpreter's version."""
    probe = (
        "import platform, sys, sysconfig;"
        "print(platform.python_version(), sys.prefix != sys.base_prefix,"
        " sysconfig.get_path('purelib'))"
    )
    version, in_venv, purelib = _output([python, "-c", probe]).split(" ", 2)
    if in_venv != "True":
        # The .pth file would then track every program of that interpreter.
        raise SystemExit(f"error: {python} is not a venv's interpreter; refusing to add {PTH_NAME}")
    pth = Path(purelib) / PTH_NAME
    if not pth.exists() or pth.read_text() != PTH_LINE:
        pth.write_text(PTH_LINE)
    # What regrtest's workers are: isolated (-I) children of the interpreter.
    check = "import sys; print('async_hooks._track_everything' in sys.modules)"
    for track, expected in ((True, "True"), (False, "False")):
        seen = _output([python, "-I", "-c", check], env=_env(track=track))
        if seen != expected:
            raise SystemExit(
                f"error: {pth} does not work: with tracking {'on' if track else 'off'}, an "
                f"isolated child {'did not import' if track else 'imported'} the tracking module"
            )
    return version


def judged_path(python: str) -> str:
    """Which of the two paths the tracked children of ``python`` run."""
    probe = "from async_hooks.lowlevel import accelerated; print(accelerated())"
    compiled = _output([python, "-I", "-c", probe], env=_env(track=False)) == "True"
    return "the compiled accelerator" if compiled else "the pure-Python fallback"


def _output(command: Sequence[str], env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return completed.stdout.strip()


def _env(
    *, track: bool, marker: str | None = None, check_dir: Path | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    # Set or removed, never inherited: a shell that exported them would
    # otherwise track the plain run, or check a run that only tracks.
    env.pop(TRACK_VARIABLE, None)
    env.pop(CHECK_DIR_VARIABLE, None)
    if track:
        env[TRACK_VARIABLE] = "1"
    if check_dir is not None:
        env[CHECK_DIR_VARIABLE] = str(check_dir.resolve())
    if marker is not None:
        env[RUN_MARKER_VARIABLE] = marker
    return env


# -- running regrtest ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    python: str
    out_dir: Path
    jobs: int
    timeout: int
    seed: int

    @property
    def run_timeout(self) -> float:
        # Reached only by a run that hangs outside every test module.
        return max(1800.0, 10.0 * self.timeout)


def run_regrtest(settings: Settings, mode: str, name: str, regrtest_args: Sequence[str]) -> Run:
    xml = settings.out_dir / f"{name}.xml"
    log = settings.out_dir / f"{name}.log"
    xml.unlink(missing_ok=True)
    marker = secrets.token_hex(8)
    command = [settings.python, "-m", "test", *regrtest_args, "--junit-xml", str(xml)]
    check_dir = None
    if mode == "checked":
        check_dir = settings.out_dir / "violations"
        check_dir.mkdir(parents=True, exist_ok=True)
        for old in check_dir.glob("*.txt"):
            old.unlink()
    start = time.perf_counter()
    with log.open("w") as output:
        output.write(f"$ {TRACK_VARIABLE}={int(mode != 'plain')} {' '.join(command)}\n")
        output.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_env(track=mode != "plain", marker=marker, check_dir=check_dir),
            process_group=0,
        )
        try:
            process.wait(timeout=settings.run_timeout)
        except subprocess.TimeoutExpired:
            output.write(f"\n*** killed: the run took more than {settings.run_timeout:.0f} s\n")
        finally:
            killed = kill_run(process, marker)
    seconds = time.perf_counter() - start
    return Run(mode, seconds, read_junit(xml), read_module_states(log), killed, log)


def kill_run(process: subprocess.Popen[bytes], marker: str) -> int:
    """Kill whatever the run left behind; returns how many processes that was."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = 0
    for pid in _pids_with(f"{RUN_MARKER_VARIABLE}={marker}".encode()):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def _pids_with(entry: bytes) -> Iterable[int]:
    """Processes whose environment holds entry (Linux: read from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:  # gone already, or another user's
            continue
        if entry in environ.split(b"\0"):
            yield int(proc.name)


def read_junit(xml: Path) -> dict[str, list[str]]:
    outcomes: dict[str, list[str]] = {}
    if not xml.exists():  # regrtest died before writing it: read_module_states tells
        return outcomes
    for case in ET.parse(xml).getroot().iter("testcase"):
        children = {child.tag for child in case}
        if children & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        outcomes.setdefault(case.get("name", "?"), []).append(outcome)
    return outcomes


def read_module_states(log: Path) -> dict[str, str]:
    """Each test module's state as regrtest last printed it (a rerun prints it again)."""
    states: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        if match := _PROGRESS.search(line):
            name, state = match.groups()
            states[name] = state.split(" -- ")[0]
    return states


# -- hangs and crashes ---------------------------------------------------------


def isolate_hangs(settings: Settings, run: Run) -> None:
    """Turn each module the run lost into per-test results, naming the tests that hung.

    A test that hangs (or kills its worker) takes its whole module's junit
    results with it, and --rerun hangs on it again. Its verbose rerun output
    names the test that was running, though: run the module again without it,
    until it completes, and take that run's results for the module. A worker
    that hangs after all its tests ended (at exit, say) gets its results read
    from that verbose output, and the module stays a failure of its own.
    """
    broken = sorted(run.broken_modules())
    if not broken:
        return
    start = time.perf_counter()
    for module in broken:
        output = _last_output(run.log.read_text(errors="replace"), module)
        ignored: list[str] = []
        while len(ignored) < _MAX_HUNG:
            if _RAN.search(_before_dump(output)):
                run.outcomes.update(_verbose_outcomes(output))
                state = run.module_states[module]
                run.module_states[module] = f"hung after its tests ran: {state}"
                break
            test = _last_started(output)
            if test is None or test in ignored:
                break  # it hung outside any test, or our ignore did not take
            ignored.append(test)
            print(f"    {module}: {test} hung; running the module without it", flush=True)
            attempt = run_regrtest(
                settings,
                run.mode,
                f"{run.mode}-{module}-{len(ignored)}",
                [
                    *("-j", "1"),
                    *("--timeout", str(settings.timeout)),
                    *("--randseed", str(settings.seed)),
                    "-v",
                    *(option for test in ignored for option in ("-i", test)),
                    module,
                ],
            )
            run.leftovers_killed += attempt.leftovers_killed
            if module not in attempt.broken_modules():
                run.outcomes.update(attempt.outcomes)
                run.module_states[module] = attempt.module_states.get(module, "completed")
                break
            output = attempt.log.read_text(errors="replace")
        for test in ignored:
            run.outcomes[test] = ["failed"]
        run.hung += ignored
    run.isolation_seconds = time.perf_counter() - start


def _last_output(log_text: str, module: str) -> str:
    """What regrtest printed for the module's last run: it follows its last progress line."""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if _progress_of(line) == module]
    if not starts:
        return ""
    block = []
    for line in lines[starts[-1] + 1 :]:
        if _progress_of(line) is not None or line.startswith("== Tests result"):
            break
        block.append(line)
    return "\n".join(block)


def _progress_of(line: str) -> str | None:
    match = _PROGRESS.search(line)
    return match.group(1) if match else None


def _before_dump(output: str) -> str:
    # A timeout's traceback dump follows the verbose lines; it names no test.
    return output.split("\nTimeout (", 1)[0]


def _last_started(output: str) -> str | None:
    started = _STARTED.findall(_before_dump(output))
    return started[-1] if started else None


def _verbose_outcomes(output: str) -> dict[str, list[str]]:
    """Each test's outcome from unittest's verbose output (a skipped test counts as passed)."""
    failed = set(_FAILED.findall(output))
    return {test: ["failed" if test in failed else "passed"] for test in _STARTED.findall(output)}


# -- the report ----------------------------------------------------------------


def report(verdict: Verdict) -> None:
    plain, tracked = verdict.plain, verdict.tracked
    print(
        f"=== CPython {verdict.version}: plain {plain.seconds:.1f} s, "
        f"tracked {tracked.seconds:.1f} s ({verdict.ratio:.2f}x); "
        f"{len(tracked.outcomes)} test outcomes tracked, {len(plain.outcomes)} plain"
    )
    _list("fail only when tracked", verdict.only_tracked)
    _list("fail when tracked, passed on rerun (not counted)", verdict.flaky_tracked)
    _list("fail plain too (not counted)", verdict.failing_plain)
    _list("env changed only when tracked, by module (not counted)", verdict.env_changed_tracked)
    for run in (plain, tracked):
        if run.leftovers_killed:
            print(f"  {run.mode}: killed {run.leftovers_killed} processes left behind")
        if run.hung:
            print(
                f"  {run.mode}: {run.isolation_seconds:.1f} s more to run modules"
                f" without their {len(run.hung)} hung tests"
            )
    print(f"  logs: {plain.log.parent}/")


def report_violations(directory: Path, run: Run) -> int:
    """Print what the checked run's interpreters wrote; returns the number of violations."""
    files = sorted(directory.glob("*.txt"))
    total = 0
    shown: list[str] = []
    for file in files:
        head, *violations = file.read_text().splitlines()
        total += int(head.split(" ", 1)[0])
        where = f"{file.name}: {head.split(': ', 1)[1][:80]}"
        shown += [f"{violation}   [{where}]" for violation in violations]
    print(
        f"=== checked run: {run.seconds:.1f} s, {len(run.outcomes)} test outcomes; "
        f"{total} lifecycle rule(s) broken, in {len(files)} interpreter(s)"
    )
    _list("broken (the first 20)", shown[:20])
    return total


def _list(title: str, items: Sequence[str]) -> None:
    print(f"  {title}: {len(items)}")
    for item in items:
        print(f"      {item}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pythons", nargs="+", help="a venv's python, one per interpreter")
    parser.add_argument("--report-only", action="store_true", help="exit 0 whatever the verdict")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="regrtest workers (default 2)")
    parser.add_argument(
        "--timeout", type=int, default=90, help="seconds per test module (default 90)"
    )
    parser.add_argument("--seed", type=int, help="regrtest --randseed (default: a random one)")
    parser.add_argument("--out", type=Path, default=Path("build/stdlib-asyncio"))
    parser.add_argument(
        "--check-events",
        action="store_true",
        help="a third run, with an EventChecker as the hook: any broken lifecycle rule fails",
    )
    parser.add_argument(
        "--test",
        action="append",
        dest="tests",
        help="a regrtest test name, repeatable (default test_asyncio, split by module)",
    )
    args = parser.parse_args(argv)
    tests = args.tests or ["test_asyncio"]
    # One seed (test order, random's seed) for every run, so that they differ in tracking only.
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed

    # A shell that starts us in the background leaves SIGINT ignored, and
    # children inherit "ignored" through exec; test_runners then waits forever
    # for a KeyboardInterrupt. A handler of our own is reset to default by exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    regrtest_args = [
        *("-j", str(args.jobs)),
        *("--timeout", str(args.timeout)),
        *("--randseed", str(seed)),
        # Failed tests run once more, alone: a failure both times is the verdict.
        "--rerun",
        *tests,
    ]
    verdicts: list[Verdict] = []
    broken: dict[str, int] = {}
    for python in args.pythons:
        version = install_pth(python)
        path = judged_path(python)
        print(f"--- CPython {version}: judging {path}", flush=True)
        settings = Settings(python, args.out / version, args.jobs, args.timeout, seed)
        settings.out_dir.mkdir(parents=True, exist_ok=True)
        runs = []
        for mode in ("plain", "tracked"):
            print(f"--- CPython {version} {mode}: regrtest {' '.join(regrtest_args)}", flush=True)
            run = run_regrtest(settings, mode, mode, regrtest_args)
            isolate_hangs(settings, run)
            runs.append(run)
        verdicts.append(Verdict(version, *runs))
        report(verdicts[-1])
        if args.check_events:
            print(f"--- CPython {version} checked: regrtest {' '.join(regrtest_args)}", flush=True)
            checked = run_regrtest(settings, "checked", "checked", regrtest_args)
            broken[version] = report_violations(settings.out_dir / "violations", checked)
        if judged_path(python) != path:
            # A stamped source edited while the runs went on: the children
            # started after it ran the fallback, without a word.
            print(f"error: on {version}, what started as {path} changed during the runs")
            return 2

    if any(not run.module_states for v in verdicts for run in (v.plain, v.tracked)):
        print("error: a run reported no test module at all; see its log")
        return 2
    plain = sum(v.plain.seconds for v in verdicts)
    tracked = sum(v.tracked.seconds for v in verdicts)
    failing = sum(len(v.only_tracked) for v in verdicts)
    print(
        f"=== {failing} fail only when tracked on {', '.join(v.version for v in verdicts)}; "
        f"wall time plain {plain:.1f} s, tracked {tracked:.1f} s ({tracked / plain:.2f}x)"
    )
    if args.check_events:
        print(
            f"=== {sum(broken.values())} lifecycle rule(s) broken under the EventChecker "
            f"({', '.join(f'{version}: {count}' for version, count in broken.items())})"
        )
    return 0 if args.report_only or not (failing or sum(broken.values())) else 1


if __name__ == "__main__":
    sys.exit(main())
