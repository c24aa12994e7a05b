"""Builds the optional accelerator ``async_hooks._speedups`` (docs/accelerator.md).

Everything else is in pyproject.toml. When the extension cannot be compiled
(no compiler, no headers), the pure-Python package is installed without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PACKAGE = Path("src", "async_hooks")


def _load_accelerator() -> Any:
    # Loaded by path: the package itself is not importable during its build.
    spec = importlib.util.spec_from_file_location(
        "_async_hooks_accelerator", PACKAGE / "_accelerator.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accelerator = _load_accelerator()


class BuildStampedExtension(build_ext):
    """build_ext that compiles the stamp of the sources into the binary."""

    def build_extension(self, ext: Any) -> None:
        ext.define_macros = [
            *ext.define_macros,
            ("ASYNC_HOOKS_BUILD_STAMP", f'"{accelerator.build_stamp(PACKAGE)}"'),
        ]
        super().build_extension(ext)


setup(
    ext_modules=[
        Extension(
            "async_hooks._speedups",
            sources=[str(PACKAGE / "_speedups.c")],
            # Stamped into the binary: a change to any of them needs a new build.
            depends=[str(PACKAGE / name) for name in accelerator.STAMPED_FILES],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildStampedExtension},
)
