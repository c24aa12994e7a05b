"""The compiled accelerator and its fallback: which one runs, and stale builds.

The suite as a whole runs on both paths (scripts/test runs it twice); this
module tests the choice itself, through ``async_hooks.lowlevel``, and the
private loader ``async_hooks._accelerator`` where the face cannot reach
(the build stamp, the docstrings of both implementations).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import async_hooks
from async_hooks import (
    AsyncLocalStorage,
    AsyncResource,
    _accelerator,
    _resource,
    _storage,
    lowlevel,
)

PACKAGE = Path(async_hooks.__file__).parent
# Built (for this interpreter), whether or not this run uses it.
compiled = pytest.mark.skipif(
    importlib.util.find_spec("async_hooks._speedups") is None,
    reason="the accelerator is not built here",
)


def _python(
    code: str, *, pure: bool, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ASYNC_HOOKS_PURE_PYTHON"}
    if pure:
        env["ASYNC_HOOKS_PURE_PYTHON"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )


def test_lowlevel_face_lists_what_it_exports() -> None:
    public = {name for name in vars(lowlevel) if not name.startswith("_")}
    assert sorted(public) == sorted(lowlevel.__all__)
    assert lowlevel.accelerated.__module__ == "async_hooks.lowlevel"


def test_accelerated_says_which_implementation_runs() -> None:
    bases = {cls.__module__ for cls in AsyncLocalStorage.__mro__ + AsyncResource.__mro__}
    assert lowlevel.accelerated() == ("async_hooks._speedups" in bases)
    if os.environ.get("ASYNC_HOOKS_PURE_PYTHON", "") not in ("", "0"):
        assert not lowlevel.accelerated()


@compiled
def test_the_environment_variable_forces_the_fallback_silently() -> None:
    code = (
        "import async_hooks, async_hooks.lowlevel as l, async_hooks._accelerator as a\n"
        "print(l.accelerated(), a.reason)"
    )
    pure = _python(code, pure=True)
    assert pure.stdout.strip() == "False ASYNC_HOOKS_PURE_PYTHON is set"
    assert pure.stderr == ""
    assert _python(code, pure=False).stdout.startswith("True compiled")


def test_a_module_that_fails_to_import_means_the_fallback_silently() -> None:
    code = (
        "import sys; sys.modules['async_hooks._speedups'] = None\n"
        "import async_hooks, async_hooks.lowlevel as l\n"
        "als = async_hooks.AsyncLocalStorage()\n"
        "print(l.accelerated(), als.run(1, als.get_store))"
    )
    result = _python(code, pure=False)
    assert result.stdout.strip() == "False 1"
    assert result.stderr == ""


@compiled
@pytest.mark.parametrize("changed", ["_storage.py", "_speedups.c"])
def test_a_build_older_than_its_sources_is_not_used(tmp_path: Path, changed: str) -> None:
    # A copy of the installed package whose sources moved on after the build,
    # as in an editable install edited since its last `pip install -e .`.
    copy = tmp_path / "async_hooks"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import async_hooks, async_hooks.lowlevel as l, async_hooks._accelerator as a\n"
        "print(async_hooks.__file__); print(l.accelerated()); print(a.reason)"
    )
    location, fresh, _ = _python(code, pure=False, pythonpath=tmp_path).stdout.splitlines()
    assert location == str(copy / "__init__.py")
    assert fresh == "True"
    source = copy / changed
    if not source.exists():
        pytest.skip(f"{changed} is not shipped beside this build")
    source.write_text(source.read_text() + "\n")  # any change counts
    _, accelerated, reason = _python(code, pure=False, pythonpath=tmp_path).stdout.splitlines()
    assert accelerated == "False"
    assert reason == f"async_hooks._speedups was built from other sources ({changed})"


def test_the_stamp_names_each_changed_file(tmp_path: Path) -> None:
    for name in _accelerator.STAMPED_FILES:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(name)
    stamp = _accelerator.build_stamp(tmp_path)
    assert _accelerator.stale_files(stamp, tmp_path) == []
    (tmp_path / "_hooks.py").write_text("changed")
    (tmp_path / "_speedups.c").unlink()  # absent (a wheel): not compared
    assert _accelerator.stale_files(stamp, tmp_path) == ["_hooks.py"]


@compiled
def test_both_implementations_have_the_same_docstrings() -> None:
    from async_hooks import _speedups

    pairs = [
        (_speedups.StorageBase.get_store, _storage._PureStorage.get_store),
        (_speedups.StorageBase.run, _storage._PureStorage.run),
        (_speedups.StorageBase.exit, _storage._PureStorage.exit),
        (_speedups.StorageBase.enter_with, _storage._PureStorage.enter_with),
        (
            _speedups.ResourceBase.run_in_async_scope,
            _resource._PureResourceScope.run_in_async_scope,
        ),
        (_speedups.snapshot, AsyncLocalStorage.snapshot),
    ]
    for compiled_one, pure_one in pairs:
        assert inspect.getdoc(compiled_one) == inspect.getdoc(pure_one), pure_one
    for compiled_one, pure_one in pairs[:5]:
        assert _parameters(compiled_one) == _parameters(pure_one), pure_one


def _parameters(function: Any) -> list[tuple[str, object]]:
    # The kind of `self` differs (a C method's is positional-only): not compared.
    self, *rest = inspect.signature(function).parameters.values()
    return [(self.name, None), *((p.name, p.kind) for p in rest)]
