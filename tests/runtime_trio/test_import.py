"""Without trio, async_hooks.trio says which extra to install; the core never needs trio."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_TRIO = "import sys; sys.modules['trio'] = None; "


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_missing_trio_names_the_extra() -> None:
    result = run_python(WITHOUT_TRIO + "import async_hooks.trio")

    assert result.returncode == 1
    assert "ImportError: async_hooks.trio needs trio" in result.stderr
    assert "pip install 'async-hooks[trio]'" in result.stderr


def test_the_core_works_without_trio() -> None:
    code = WITHOUT_TRIO + (
        "import async_hooks; "
        "hook = async_hooks.create_hook(init=lambda *a: None).enable(); "
        "hook.disable(); print('ok')"
    )
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_enabling_a_hook_tracks_trio_once_trio_is_imported() -> None:
    # No `import async_hooks.trio`: the runtime package turns trio tracking on
    # with the first hook when the program has imported trio.
    code = """
import trio
import async_hooks

types = []
hook = async_hooks.create_hook(init=lambda i, t, tr, r: types.append(t)).enable()

async def main():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)

trio.run(main)
hook.disable()
print(types.count("TrioTask") >= 3, hasattr(trio.run, "__wrapped__"))
"""
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    # Tasks were reported, and trio.run is the original again after the last hook.
    assert result.stdout.split() == ["True", "False"]


def test_a_hook_enabled_before_trio_is_imported_tracks_trio_runs() -> None:
    # The first hook comes before `import trio`, and nothing imports
    # async_hooks.trio: trio is tracked all the same, and its module is the
    # plain one (its loader is trio's own, not a watcher's).
    code = """
import sys
import async_hooks

types = []
hook = async_hooks.create_hook(init=lambda i, t, tr, r: types.append(t)).enable()
import trio

async def main():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)

trio.run(main)
hook.disable()
watchers = [f for f in sys.meta_path if type(f).__module__.startswith("async_hooks")]
print(types.count("TrioTask") >= 3, hasattr(trio.run, "__wrapped__"), watchers,
      type(trio.__loader__).__module__.startswith("async_hooks"))
"""
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "[]", "False"]


def test_the_import_watch_leaves_with_the_last_hook() -> None:
    code = WITHOUT_TRIO.replace("sys.modules['trio'] = None; ", "") + (
        "import async_hooks; "
        "hook = async_hooks.create_hook(init=lambda *a: None).enable(); "
        "watching = len(sys.meta_path); hook.disable(); "
        "print(watching - len(sys.meta_path), 'trio' in sys.modules)"
    )
    result = run_python(code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "False"]
