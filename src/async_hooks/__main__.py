"""The command line of the tools: ``python -m async_hooks run|ps|tree ...``.

Thin on purpose: it parses, checks and hands over to ``async_hooks._tools``,
where each tool is also a Python API (re-exported by
:mod:`async_hooks.diagnostics`). See docs/tools.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

PROG = "async-hooks"

# The options of `run` that take a value: everything up to the program is ours.
_RUN_OPTIONS_WITH_VALUE = frozenset(
    {"--trace", "--html", "--store", "--why-running-after", "--why-running-signal", "--format",
     "--stalls", "--repr-limit"}
)  # fmt: skip


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} run",
        usage=f"{PROG} run [options] (script.py | -m module) [args ...]",
        description="Run a Python program with runtime tracking on from its first line.",
    )
    parser.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace to FILE")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    parser.add_argument(
        "--store",
        metavar="NAME",
        action="append",
        default=[],
        help="show the values of the AsyncLocalStorage named NAME (repeatable)",
    )
    parser.add_argument(
        "--why-running", action="store_true", help="at exit, print what keeps the program alive"
    )
    parser.add_argument(
        "--why-running-after",
        metavar="SECONDS",
        type=_non_negative_float,
        help="print it if the program is still running SECONDS after its main returned",
    )
    parser.add_argument(
        "--why-running-signal",
        metavar="SIGNAL",
        default="SIGUSR1",
        type=_signal_name,
        help="with --why-running, the signal that prints it while running (default SIGUSR1; "
        "'none' for no signal)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="why-running report format"
    )
    parser.add_argument(
        "--stalls",
        metavar="MS",
        type=_positive_float,
        help="report every step that blocks the event loop longer than MS milliseconds",
    )
    parser.add_argument(
        "--live", action="store_true", help="serve the task tree to `ps` and `tree`"
    )
    parser.add_argument(
        "--repr-limit",
        metavar="N",
        type=int,
        default=1000,
        help="longest store value shown, in characters (default 1000)",
    )
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _signal_name(text: str) -> str | None:
    if text.lower() == "none":
        return None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if not isinstance(getattr(signal, name, None), signal.Signals):
        raise argparse.ArgumentTypeError(f"unknown signal {text!r}")
    return name


def _split_run_arguments(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(our options, [target, program args...])``: the program's own options are its own."""
    ours: list[str] = []
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--":
            return ours, list(argv[index + 1 :])
        if argument == "-m":
            return ours, list(argv[index:])
        if not argument.startswith("-") or argument == "-":
            return ours, list(argv[index:])
        ours.append(argument)
        if argument in _RUN_OPTIONS_WITH_VALUE:
            if index + 1 < len(argv):
                ours.append(argv[index + 1])
            index += 1
        index += 1
    return ours, []


def _command_run(argv: Sequence[str]) -> int:
    from ._tools._run import Program, RunOptions, UsageError, run_program

    parser = _run_parser()
    ours, rest = _split_run_arguments(argv)
    options = parser.parse_args(ours)  # exits with status 2 on a bad option
    if not rest:
        parser.error("a script or -m module is required")
    try:
        if rest[0] == "-m":
            if len(rest) < 2:
                parser.error("argument -m: expected a module name")
            program, args = Program.of_module(rest[1]), rest[2:]
        else:
            program, args = Program.script(rest[0]), rest[1:]
        if options.repr_limit < 10:
            parser.error(f"argument --repr-limit: expected at least 10, got {options.repr_limit}")
        run_options = RunOptions(
            trace=options.trace,
            html=options.html,
            stores=tuple(options.store),
            why_running=options.why_running,
            why_running_after=options.why_running_after,
            why_running_signal=options.why_running_signal,
            format=options.format,
            stalls_ms=options.stalls,
            live=options.live,
            repr_limit=options.repr_limit,
        )
        return run_program(program, args, run_options)
    except UsageError as error:
        print(f"{PROG} run: error: {error}", file=sys.stderr)
        return 2


def _command_live(command: str, argv: Sequence[str]) -> int:
    from ._tools._live_view import LiveViewError, list_processes, show_process

    parser = argparse.ArgumentParser(
        prog=f"{PROG} {command}",
        description=(
            "Show the task table of a process started with `run --live`."
            if command == "ps"
            else "Show the causal/await tree of a process started with `run --live`."
        ),
    )
    parser.add_argument("pid", nargs="?", type=int, help="the process (omit to list them)")
    parser.add_argument("--timeout", type=_positive_float, default=3.0, help="seconds to wait")
    options = parser.parse_args(argv)
    try:
        if options.pid is None:
            sys.stdout.write(list_processes())
        else:
            sys.stdout.write(show_process(options.pid, view=command, timeout=options.timeout))
    except LiveViewError as error:
        print(f"{PROG} {command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point of ``python -m async_hooks`` and of the ``async-hooks`` script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tools on top of async_hooks runtime tracking (see docs/tools.md).",
    )
    parser.add_argument(
        "command",
        choices=("run", "ps", "tree"),
        help="run: run a program under the tools (run --help); ps [PID]: the processes that "
        "serve a live view, or one's task table; tree PID: its causal tree",
    )
    if not arguments or arguments[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if arguments else 2
    if arguments[0] not in ("run", "ps", "tree"):
        parser.parse_args(arguments[:1])  # exits 2, naming the bad command
    command, rest = arguments[0], arguments[1:]
    if command == "run":
        return _command_run(rest)
    return _command_live(command, rest)


if __name__ == "__main__":
    sys.exit(main())
