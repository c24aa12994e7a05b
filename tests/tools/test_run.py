"""``run``: the program behaves exactly as under plain python, with tracking on."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ._programs import interrupt, load_trace, python, start, tool, wait_for_line, write

SHOWS_ITSELF = """
import os, sys
import async_hooks.lowlevel
print(repr(sys.argv))
print(repr(sys.path[0]))
print(repr(__name__), repr(__file__), repr(__package__), repr(__spec__ and __spec__.name))
print(sys.modules["__main__"] is sys.modules[__name__])
print(repr(type(__loader__).__name__))
print("tracking", async_hooks.lowlevel.is_tracking(), file=sys.stderr)
"""


def test_a_script_sees_what_python_would_show_it(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    write(tmp_path / "app" / "show.py", SHOWS_ITSELF)
    plain = python("app/show.py", "one", "--two", cwd=tmp_path)
    ours = tool("run", "app/show.py", "one", "--two", cwd=tmp_path)
    assert ours.returncode == plain.returncode == 0
    assert ours.stdout == plain.stdout
    assert plain.stderr == "tracking False\n"
    assert ours.stderr == "tracking True\n"  # on from the first line


def test_a_module_sees_what_python_m_would_show_it(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package / "show.py", SHOWS_ITSELF)
    plain = python("-m", "pkg.show", "x", cwd=tmp_path)
    ours = tool("run", "-m", "pkg.show", "x", cwd=tmp_path)
    assert ours.returncode == plain.returncode == 0
    assert ours.stdout == plain.stdout
    assert ours.stderr == "tracking True\n"


def test_options_after_the_script_belong_to_the_program(tmp_path: Path) -> None:
    write(tmp_path / "args.py", "import sys; print(sys.argv[1:])")
    ours = tool("run", "args.py", "--trace", "x", "-m", "y", cwd=tmp_path)
    assert ours.stdout == "['--trace', 'x', '-m', 'y']\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [
        ("import sys; sys.exit(3)", 3, ""),
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
        ("raise SystemExit(7)", 7, ""),
    ],
)
def test_exit_status_passes_through(tmp_path: Path, code: str, status: int, stderr: str) -> None:
    write(tmp_path / "exits.py", code)
    plain = python("exits.py", cwd=tmp_path)
    ours = tool("run", "--trace", "t.json", "exits.py", cwd=tmp_path)
    assert (plain.returncode, plain.stderr) == (status, stderr)
    assert (ours.returncode, ours.stderr) == (status, stderr)
    load_trace(tmp_path / "t.json")


def test_an_uncaught_exception_prints_the_same_traceback(tmp_path: Path) -> None:
    write(
        tmp_path / "fails.py",
        """
        import asyncio

        async def inner():
            raise ValueError("broken")

        def outer():
            asyncio.run(inner())

        print("before")
        outer()
        """,
    )
    plain = python("fails.py", cwd=tmp_path)
    ours = tool("run", "--trace", "t.json", "fails.py", cwd=tmp_path)
    assert plain.returncode == ours.returncode == 1
    assert ours.stdout == plain.stdout == "before\n"
    # The traceback is python's, line for line, apart from the tracking
    # machinery's frames between asyncio and the coroutine.
    plain_lines = [line for line in plain.stderr.splitlines() if "async_hooks" not in line]
    ours_lines = ours.stderr.splitlines()
    assert ours_lines[0] == "Traceback (most recent call last):"
    assert ours_lines[1] == plain_lines[1]  # starts at the script, not at the tool
    assert ours_lines[-1] == plain_lines[-1] == "ValueError: broken"
    assert "__main__.py" not in ours.stderr
    assert "_run.py" not in ours.stderr
    load_trace(tmp_path / "t.json")


def test_a_sys_excepthook_the_program_installed_reports_its_exception(tmp_path: Path) -> None:
    write(
        tmp_path / "hooked.py",
        """
        import sys
        sys.excepthook = lambda kind, error, tb: print("hooked", kind.__name__, file=sys.stderr)
        raise KeyError(1)
        """,
    )
    ours = tool("run", "hooked.py", cwd=tmp_path)
    assert (ours.returncode, ours.stderr) == (1, "hooked KeyError\n")


SLEEPS = """
import asyncio, sys

async def main():
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_sigint_raises_keyboardinterrupt_and_dies_of_sigint_as_python_does(tmp_path: Path) -> None:
    write(tmp_path / "sleeps.py", SLEEPS)
    plain = start("sleeps.py", cwd=tmp_path, tool_run=False)
    wait_for_line(plain, "ready")
    _, plain_err = interrupt(plain)
    ours = start("--trace", "t.json", "--why-running", "sleeps.py", cwd=tmp_path)
    wait_for_line(ours, "ready")
    _, our_err = interrupt(ours)
    assert plain.returncode == ours.returncode == -signal.SIGINT
    assert plain_err.rstrip().endswith("KeyboardInterrupt")
    assert "KeyboardInterrupt" in our_err
    load_trace(tmp_path / "t.json")


def test_sigterm_kills_as_by_default_and_the_trace_is_still_valid(tmp_path: Path) -> None:
    write(tmp_path / "sleeps.py", SLEEPS)
    ours = start("--trace", "t.json", "sleeps.py", cwd=tmp_path)
    wait_for_line(ours, "ready")
    _, err = interrupt(ours, signal.SIGTERM)
    assert ours.returncode == -signal.SIGTERM
    assert err == ""
    events = load_trace(tmp_path / "t.json")
    assert any(event["ph"] == "X" for event in events)


def test_a_program_that_handles_sigterm_keeps_its_handler(tmp_path: Path) -> None:
    write(
        tmp_path / "handles.py",
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    ours = start("--trace", "t.json", "handles.py", cwd=tmp_path)
    wait_for_line(ours, "ready")
    interrupt(ours, signal.SIGTERM)
    assert ours.returncode == 5
    load_trace(tmp_path / "t.json")


# -- bad input: status 2 before the program starts --------------------------------------


def test_an_unknown_option_is_named(tmp_path: Path) -> None:
    write(tmp_path / "ok.py", "print('ran')")
    result = tool("run", "--no-such-option", "ok.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr
    assert result.stdout == ""


def test_a_missing_script_is_named(tmp_path: Path) -> None:
    result = tool("run", "--trace", "t.json", "missing.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.py" in result.stderr
    assert "No such file" in result.stderr
    assert not (tmp_path / "t.json").exists()


def test_a_missing_module_is_named(tmp_path: Path) -> None:
    result = tool(
        "run", "--trace", "t.json", "--html", "r.html", "-m", "no_such_module_here", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "No module named no_such_module_here" in result.stderr
    assert not (tmp_path / "t.json").exists()
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("option", ["--trace", "--html"])
def test_an_unwritable_output_path_is_named_and_the_program_never_starts(
    tmp_path: Path, option: str
) -> None:
    write(tmp_path / "ok.py", "print('ran')")
    result = tool("run", option, "no/such/dir/out", "ok.py", cwd=tmp_path)
    assert result.returncode == 2
    assert option in result.stderr
    assert "no/such/dir/out" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "arguments",
    [["run"], ["run", "--trace"], ["run", "--stalls", "0", "x.py"], ["frobnicate"], []],
)
def test_incomplete_commands_exit_2(tmp_path: Path, arguments: list[str]) -> None:
    result = tool(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr or result.stdout


def test_a_store_the_program_never_created_is_warned_about_at_exit(tmp_path: Path) -> None:
    write(
        tmp_path / "stores.py",
        """
        import sys
        from async_hooks import AsyncLocalStorage
        request = AsyncLocalStorage(name="request")
        sys.exit(4)
        """,
    )
    result = tool("run", "--store", "requets", "--store", "request", "stores.py", cwd=tmp_path)
    assert result.returncode == 4
    assert "'requets'" in result.stderr
    assert "'request'" in result.stderr  # the stores that were created
    assert "warning" in result.stderr


def test_the_program_computes_the_same_with_every_tool_on(tmp_path: Path) -> None:
    write(
        tmp_path / "computes.py",
        """
        import asyncio, threading, concurrent.futures

        async def work(n):
            await asyncio.sleep(0)
            return sum(await asyncio.gather(*(asyncio.to_thread(pow, i, 2) for i in range(n))))

        results = []
        thread = threading.Thread(target=lambda: results.append(asyncio.run(work(30))))
        thread.start(); thread.join()
        print(results, asyncio.run(work(10)))
        """,
    )
    plain = python("computes.py", cwd=tmp_path)
    ours = tool(
        "run", "--trace", "t.json", "--html", "r.html", "--why-running", "--stalls", "50",
        "computes.py", cwd=tmp_path,
    )  # fmt: skip
    assert ours.returncode == plain.returncode == 0
    assert ours.stdout == plain.stdout


def test_packages_directories_and_zip_files_run_their_main(tmp_path: Path) -> None:
    import zipfile

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    write(tmp_path / "app" / "__main__.py", "import sys; print(__name__, sys.argv[1:])")
    with zipfile.ZipFile(tmp_path / "app.zip", "w") as archive:
        archive.write(tmp_path / "app" / "__main__.py", "__main__.py")
    for target in (["-m", "app"], ["app"], ["app.zip"]):
        plain = python(*target, "x", cwd=tmp_path)
        ours = tool("run", *target, "x", cwd=tmp_path)
        assert (ours.returncode, ours.stdout) == (plain.returncode, plain.stdout), target
        assert ours.stdout == "__main__ ['x']\n"
