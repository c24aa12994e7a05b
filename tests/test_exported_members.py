"""The faces: each lists exactly what it exports, and names itself as the home of each.

A name that is public in a face but missing from its ``__all__`` is an
internal leaking out; one whose ``__module__`` is a private module would send
``help()`` readers and reprs there.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import async_hooks
from async_hooks.propagation import ContextExecutor

FACES = [
    "async_hooks",
    "async_hooks.diagnostics",
    "async_hooks.lowlevel",
    "async_hooks.propagation",
    "async_hooks.trio",
]

# The faces that are submodules of the package, seen as attributes of it.
SUBMODULE_FACES = {"diagnostics", "errors", "integrations", "lowlevel", "propagation", "trio"}


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


@pytest.mark.parametrize("face", FACES)
def test_every_public_name_of_a_face_is_exported(face: str) -> None:
    module = importlib.import_module(face)
    assert _public_names(module) == set(module.__all__)


@pytest.mark.parametrize("face", FACES)
def test_each_exported_class_and_function_names_its_face(face: str) -> None:
    module = importlib.import_module(face)
    for name in module.__all__:
        value = getattr(module, name)
        if (
            isinstance(value, type | types.FunctionType)
            and value is not async_hooks.AsyncHooksError
        ):
            assert value.__module__ == face, name


def test_the_package_exposes_no_private_module_as_a_public_name() -> None:
    public_modules = {
        name
        for name, value in vars(async_hooks).items()
        if isinstance(value, types.ModuleType) and not name.startswith("_")
    }
    assert public_modules <= SUBMODULE_FACES


def test_errors_module_lists_every_error_class() -> None:
    from async_hooks import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, BaseException | Warning)
    }
    assert classes == set(errors.__all__)
    assert async_hooks.AsyncHooksError is errors.AsyncHooksError


def test_reprs_name_the_public_path() -> None:
    assert repr(async_hooks.AsyncLocalStorage) == "<class 'async_hooks.AsyncLocalStorage'>"
    assert repr(async_hooks.Crossing.ALL).startswith("<Crossing.")
    assert repr(ContextExecutor) == "<class 'async_hooks.propagation.ContextExecutor'>"


def test_every_module_but_a_face_is_private_and_lists_no_exports() -> None:
    # Run in a fresh interpreter, so that every module of the package is seen.
    # A private module that has __all__ would be claiming names for a face.
    program = (
        "import importlib, pkgutil, async_hooks\n"
        "for info in pkgutil.walk_packages(async_hooks.__path__, 'async_hooks.'):\n"
        "    private = any(part.startswith('_') for part in info.name.split('.'))\n"
        "    if private and info.name != 'async_hooks.__main__':\n"
        "        module = importlib.import_module(info.name)\n"
        "        assert not hasattr(module, '__all__'), info.name\n"
        "    print(info.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    public = {
        name
        for name in result.stdout.split()
        if not any(part.startswith("_") for part in name.split("."))
    }
    integrations = {name for name in public if name.startswith("async_hooks.integrations.")}
    assert public - integrations == {f"async_hooks.{face}" for face in SUBMODULE_FACES}
