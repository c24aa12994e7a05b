"""Which implementation of the storage hot path runs: the compiled one or pure Python.

``speedups`` is the compiled module ``async_hooks._speedups`` when it can be
used, else None, and ``reason`` says why (docs/accelerator.md)::

    from async_hooks._accelerator import speedups
    Base = PureBase if speedups is None else speedups.StorageBase

The fallback runs, silently, when ``ASYNC_HOOKS_PURE_PYTHON`` is set (to
anything but "" or "0"), when the module was not built or fails to import,
and when it was built from other sources than the ones beside it: an
editable install whose C or Python sources changed since its last build
must not run the old binary against them.

This module imports nothing from the package: ``setup.py`` loads it by path
to compute the stamp it compiles into the binary.
"""

from __future__ import annotations

import hashlib
import os
from types import ModuleType

# No pathlib or importlib.util at import: every program that imports
# async_hooks pays for what this module imports (docs/benchmarks.md).

ENV_VAR = "ASYNC_HOOKS_PURE_PYTHON"

# The C source and the Python modules that call it or that it calls back
# into: a change to any of them needs a new build.
STAMPED_FILES = (
    "_speedups.c",
    "_accelerator.py",
    "_coroutines.py",
    "_execution.py",
    "_hooks.py",
    "_resource.py",
    "_storage.py",
    os.path.join("_runtime", "_asyncio.py"),
    os.path.join("_runtime", "_live.py"),
    os.path.join("_runtime", "_network.py"),
)


def _digest(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def build_stamp(directory: str | os.PathLike[str]) -> str:
    """``name=sha256;...`` for each stamped file of ``directory`` (what a build records)."""
    return ";".join(f"{name}={_digest(os.path.join(directory, name))}" for name in STAMPED_FILES)


def stale_files(stamp: str, directory: str | os.PathLike[str]) -> list[str]:
    """The stamped files of ``directory`` whose content differs from ``stamp``.

    A file that is absent is not compared: an installed wheel ships the
    binary without its C source.
    """
    recorded = dict(entry.partition("=")[::2] for entry in stamp.split(";") if entry)
    stale = []
    for name in STAMPED_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path) and recorded.get(name) != _digest(path):
            stale.append(name)
    return stale


def _load() -> tuple[ModuleType | None, str]:
    if not __package__:  # loaded by path, by setup.py
        return None, "not loaded as part of the package"
    if os.environ.get(ENV_VAR, "") not in ("", "0"):
        return None, f"{ENV_VAR} is set"
    try:
        from . import _speedups
    except Exception as error:
        import importlib.util

        if importlib.util.find_spec(f"{__package__}._speedups") is None:
            return None, "async_hooks._speedups is not built"
        # Built for another interpreter, or broken.
        return None, f"async_hooks._speedups cannot be imported: {error}"
    stale = stale_files(_speedups.BUILD_STAMP, os.path.dirname(__file__))
    if stale:
        return None, f"async_hooks._speedups was built from other sources ({', '.join(stale)})"
    return _speedups, "compiled"


speedups, reason = _load()


def accelerated() -> bool:
    """Whether the compiled accelerator ``async_hooks._speedups`` runs the hot path.

    False when it was not built, fails to import, is stale (built from other
    sources) or ``ASYNC_HOOKS_PURE_PYTHON`` is set; the pure-Python fallback
    behaves the same (docs/accelerator.md).
    """
    return speedups is not None
