"""Run a program as ``python script.py`` / ``python -m module`` would, with the tools on.

The same ``sys.argv``, ``sys.path[0]``, ``__main__`` module, output, exit
status, traceback for an uncaught exception, and behaviour on SIGINT and
SIGTERM; the only difference is that runtime tracking is on from the
program's first line, and that the tools asked for report at the end.

Use::

    status = run_program(Program.script("app.py"), ["--port", "8000"], RunOptions(trace="t.json"))
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.machinery
import io
import os
import runpy
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from .. import _hooks
from .._policy import live_stores
from ._dropped import DROPPED_STATE, DroppedWork
from ._history import ResourceHistory
from ._trace import TraceWriter
from ._values import DEFAULT_REPR_LIMIT
from ._why_running import TOOL_THREAD_PREFIX, format_text, pending_work, why_running


class UsageError(Exception):
    """Bad input caught before the program starts: the command exits with status 2."""


@dataclass(frozen=True)
class RunOptions:
    """What ``run`` was asked for, one field per command-line option."""

    trace: str | None = None
    html: str | None = None
    stores: tuple[str, ...] = ()
    why_running: bool = False
    why_running_after: float | None = None
    why_running_signal: str | None = "SIGUSR1"
    format: str = "text"
    stalls_ms: float | None = None
    live: bool = False
    repr_limit: int = DEFAULT_REPR_LIMIT


@dataclass
class Program:
    """The program to run: a script's path or a module's name, checked before it runs."""

    path: str | None = None
    module: str | None = None
    _module_details: tuple[str, importlib.machinery.ModuleSpec, CodeType] | None = field(
        default=None, repr=False
    )

    @classmethod
    def script(cls, path: str) -> Program:
        # A directory or zip file runs its __main__.py, as python runs it.
        main = os.path.join(path, "__main__.py") if os.path.isdir(path) else path
        try:
            with open(main, "rb"):
                pass
        except OSError as error:
            raise UsageError(f"can't open file {os.path.abspath(main)!r}: {error}") from error
        return cls(path=path)

    @classmethod
    def of_module(cls, name: str) -> Program:
        return cls(module=name)

    @property
    def label(self) -> str:
        if self.module is not None:
            return self.module
        return os.path.basename(self.path or "python")

    def resolve_module(self) -> None:
        """Find the module as ``python -m`` does (importing its parent packages)."""
        if self.module is None or self._module_details is not None:
            return
        try:
            # The lookup ``python -m`` itself uses: packages run their __main__.
            self._module_details = runpy._get_module_details(self.module)  # type: ignore[attr-defined]
        except ImportError as error:
            raise UsageError(str(error)) from error


# -- running ---------------------------------------------------------------------------


class _Session:
    """The tools of one run, and the order in which they finish."""

    def __init__(self, program: Program, options: RunOptions) -> None:
        self.program = program
        self.options = options
        self.started = time.monotonic()
        self.history: ResourceHistory | None = None
        self.dropped: DroppedWork | None = None
        self.trace: TraceWriter | None = None
        self._trace_is_temporary = False
        self.extras: list[Any] = []  # stall detector, live server: each has close()
        self.main_returned = False
        self.finished = False
        self.interrupted = False
        self.exit_report: list[dict[str, Any]] | None = None
        # The output files made before the program started: removed if it never does.
        self.created: list[str] = []
        self.html_path = options.html
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        # A forked child that exits normally writes its own page, beside the
        # parent's (its trace is already beside the parent's trace).
        if self.html_path is not None:
            stem, suffix = os.path.splitext(self.html_path)
            self.html_path = f"{stem}.{os.getpid()}{suffix or '.html'}"

    # The output files are opened before the program starts, so that a bad
    # path is reported (status 2) before any of the program's code runs.
    def open_outputs(self) -> None:
        options = self.options
        if options.html is not None:
            try:
                with open(options.html, "w", encoding="utf-8") as page:
                    page.write("")
            except OSError as error:
                raise UsageError(f"cannot write --html {options.html!r}: {error}") from error
            self.created.append(options.html)
        path = options.trace
        if path is None and options.html is not None:
            handle, path = tempfile.mkstemp(prefix="async-hooks-", suffix=".trace.json")
            os.close(handle)
            self._trace_is_temporary = True
        if path is not None:
            try:
                self.trace = TraceWriter(
                    path,
                    stores=options.stores,
                    repr_limit=options.repr_limit,
                    process_name=self.program.label,
                )
            except OSError as error:
                raise UsageError(f"cannot write --trace {path!r}: {error}") from error

    def start(self) -> None:
        # The tools that run threads of their own start first, before any
        # hook is enabled, so that tracking does not follow their threads.
        options = self.options
        if options.stalls_ms is not None:
            from ._stalls import StallDetector

            self.extras.append(
                StallDetector(
                    options.stalls_ms,
                    stores=options.stores,
                    trace=self.trace,
                    repr_limit=options.repr_limit,
                ).start()
            )
        if options.live:
            from ._live_view import serve_live

            self.extras.append(serve_live(stores=options.stores or None))
        self.history = ResourceHistory().enable()
        self.dropped = DroppedWork(
            self.history, stores=options.stores or None, repr_limit=options.repr_limit
        ).start()
        self.extras.append(self.dropped)
        if self.trace is not None:
            self.trace.start()
        _watch_for_trio()
        if self.trace is not None and hasattr(signal, "SIGTERM"):
            _install_if_default(signal.SIGTERM, self._on_sigterm)
        if options.why_running and options.why_running_signal:
            number = getattr(signal, options.why_running_signal)
            _install_if_default(number, self._on_report_signal)

    def _on_sigterm(self, number: int, frame: FrameType | None) -> None:
        # Only to finish the trace file: then SIGTERM does what it does by default.
        if self.trace is not None:
            self.trace.close_from_signal()
        _flush_std_streams()
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)

    def _on_report_signal(self, number: int, frame: FrameType | None) -> None:
        self.print_report(f"what is running now ({signal.Signals(number).name})")

    def print_report(self, heading: str) -> None:
        text = why_running(
            format=self.options.format,
            stores=self.options.stores or None,
            history=self.history,
            repr_limit=self.options.repr_limit,
        )
        if self.options.format == "text":
            text = text.replace("async-hooks: ", f"async-hooks: {heading}: ", 1)
        sys.stderr.write(text)
        sys.stderr.flush()

    def after_main(self) -> None:
        """The program's main code returned (or raised); its threads may still run."""
        with _reported_not_raised():
            self._after_main()

    def _after_main(self) -> None:
        self.main_returned = True
        _hooks.flush_pending_destroys()
        options = self.options
        entries = pending_work(
            stores=options.stores or None, history=self.history, repr_limit=options.repr_limit
        )
        entries = self.dropped.entries + entries if self.dropped is not None else entries
        self.exit_report = entries
        if self.trace is not None:
            self.trace.add_instant(
                "left running at exit", cat="why-running", args={"resources": entries}, scope="g"
            )
        if options.why_running:
            if options.format == "json":
                import json

                sys.stderr.write(json.dumps({"count": len(entries), "resources": entries}) + "\n")
            else:
                sys.stderr.write(format_text(entries, heading=_exit_heading(entries)))
            sys.stderr.flush()
        if options.why_running_after is not None:
            threading.Thread(
                target=self._report_if_still_running,
                args=(options.why_running_after,),
                name=f"{TOOL_THREAD_PREFIX}why-running-after",
                daemon=True,
            ).start()

    def _report_if_still_running(self, seconds: float) -> None:
        time.sleep(seconds)
        if not self.finished:
            self.print_report(f"main returned {seconds:g} s ago and the program is still running")

    def finish(self) -> None:
        """At exit, after the program's own atexit handlers: close every tool, warn."""
        if self.finished:
            return
        self.finished = True
        with _reported_not_raised():
            self._finish()
        _flush_std_streams()
        if self.interrupted:
            # What python does after an uncaught KeyboardInterrupt: die of SIGINT.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)

    def _finish(self) -> None:
        _hooks.flush_pending_destroys()
        for extra in reversed(self.extras):
            extra.close()
        if self.history is not None:
            self.history.disable()
        trace = self.trace
        if trace is not None:
            trace.close()
            if self.html_path is not None:
                from ._html import write_html_report

                write_html_report(trace.path, self.html_path, title=self.program.label)
                if self._trace_is_temporary:
                    os.unlink(trace.path)
        self._warn_missing_stores()

    def _warn_missing_stores(self) -> None:
        if not self.options.stores:
            return
        created = sorted({store.name for store in live_stores.all_stores()})
        if self.trace is not None:
            created = sorted(set(created) | self.trace.stores.seen_names)
        missing = [name for name in self.options.stores if name not in created]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            known = ", ".join(repr(name) for name in created) or "none"
            sys.stderr.write(
                f"async-hooks: warning: --store {names}: the program created no store of "
                f"that name (stores it created: {known})\n"
            )


@contextlib.contextmanager
def _reported_not_raised() -> Iterator[None]:
    """A failure of the tools is reported; it never changes the program's exit or output."""
    try:
        yield
    except Exception:
        sys.stderr.write("async-hooks: internal error in the tools (the program is unaffected):\n")
        traceback.print_exc()


def _exit_heading(entries: list[dict[str, Any]]) -> str:
    dropped = sum(1 for entry in entries if entry["state"] == DROPPED_STATE)
    count = sum(1 for entry in entries if entry["keeps_busy"]) - dropped
    heading = f"at exit, {count} thing{'s' if count != 1 else ''} left running"
    if dropped:
        heading += f", {dropped} dropped unrun when their event loop closed"
    return heading


def _install_if_default(number: int, handler: Callable[[int, FrameType | None], None]) -> None:
    # A handler the program inherited (or that an embedding tool set) is theirs.
    if signal.getsignal(number) in (signal.SIG_DFL, None):
        signal.signal(number, handler)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def run_program(program: Program, args: Sequence[str], options: RunOptions) -> int:
    """Run ``program`` with ``args`` under the tools; return its exit status.

    Raises :class:`UsageError` before the program starts when the program or
    an output path is bad. ``SystemExit`` raised by the program propagates,
    so the caller exits as python would.
    """
    session = _Session(program, options)
    session.open_outputs()
    # Registered before the program can register anything: runs after its handlers.
    atexit.register(session.finish)
    session.start()
    try:
        program.resolve_module()
    except UsageError:
        session.finished = True
        if session.history is not None:
            session.history.disable()
        if session.trace is not None:
            session.trace.close()
            os.unlink(session.trace.path)
        for extra in session.extras:
            extra.close()
        for path in session.created:
            with contextlib.suppress(OSError):
                os.unlink(path)
        atexit.unregister(session.finish)
        raise
    try:
        _execute(program, args)
    except SystemExit:
        session.after_main()
        raise
    except BaseException as error:
        _print_uncaught(error)
        session.interrupted = isinstance(error, KeyboardInterrupt)
        session.after_main()
        return 1
    session.after_main()
    return 0


def _execute(program: Program, args: Sequence[str]) -> None:
    main = types.ModuleType("__main__")
    if program.module is not None:
        assert program._module_details is not None
        name, spec, code = program._module_details
        sys.argv[:] = [spec.origin or name, *args]
        sys.path[0] = os.getcwd()
        sys.modules["__main__"] = main
        runpy._run_code(code, vars(main), None, "__main__", spec)  # type: ignore[attr-defined]
        return
    assert program.path is not None
    path = program.path
    sys.argv[:] = [path, *args]
    full_path = os.path.abspath(path)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    if os.path.isdir(path) or (not path.endswith((".py", ".pyw")) and _is_zip(path)):
        # A directory or zip with a __main__.py: runpy knows those layouts.
        runpy.run_path(path, run_name="__main__")
        return
    with io.open_code(full_path) as source_file:
        source = source_file.read()
    code = compile(source, full_path, "exec", dont_inherit=True)
    main.__file__ = full_path
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full_path)
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    main.__spec__ = None
    main.__package__ = None
    sys.modules["__main__"] = main
    exec(code, vars(main))


def _is_zip(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _print_uncaught(error: BaseException) -> None:
    """Report an exception that escaped the program, as the interpreter would."""
    traceback = error.__traceback__
    # Drop this module's frames: python's own report starts at the program's.
    while traceback is not None and traceback.tb_frame.f_code.co_filename == __file__:
        traceback = traceback.tb_next
    if traceback is not None and traceback.tb_frame.f_code.co_filename == runpy.__file__:
        while traceback is not None and traceback.tb_frame.f_code.co_filename == runpy.__file__:
            traceback = traceback.tb_next
    error.__traceback__ = traceback
    sys.excepthook(type(error), error, traceback)


# -- trio --------------------------------------------------------------------------------


# Duck-typed rather than subclasses of importlib.abc's classes: importing
# importlib.abc would cost every run a few milliseconds of start-up.
class _TrackAfterImport:
    """trio's own loader, which turns trio tracking on once trio is imported."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its real loader; this one only had to see it loaded.
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        from .._runtime._trio import enable_auto_tracking

        enable_auto_tracking()


class _TrioWatcher:
    """Turns trio tracking on when the program imports trio (tracking started before)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "trio":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _TrackAfterImport(spec.loader)  # type: ignore[assignment]  # a Loader by its methods
        return spec


def _watch_for_trio() -> None:
    if "trio" in sys.modules:
        from .._runtime._trio import enable_auto_tracking

        enable_auto_tracking()
    elif not any(isinstance(finder, _TrioWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TrioWatcher())
