"""Run a function once a module has been imported, whenever that happens.

Tracking starts with the first enabled hook, which may come before the
program imports trio: trio's runs can only be wrapped once trio exists. A
finder on ``sys.meta_path`` sees the import of the watched module, lets the
real finders find it, and runs the callback right after the module's code
ran. It is installed only while tracking is on and trio is not imported
yet, and takes itself out after the first time.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# Not importlib.abc: it imports importlib.resources, and with it tempfile,
# shutil and random, into every program that imports async_hooks. A finder
# and a loader are whatever has their methods.

_lock = threading.Lock()


class Watcher:
    """Finds nothing itself: it wraps the loader the other finders give ``name``."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _CallbackLoader(spec.loader, self)  # type: ignore[assignment]
                return spec
        return None


class _CallbackLoader:
    """The real loader, and the watcher's callback once the module ran."""

    def __init__(self, loader: Any, watcher: Watcher) -> None:
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module's own spec must name the real loader: importlib.reload
        # and tools that read module.__loader__ see nothing of ours.
        module.__loader__ = module.__spec__.loader = self._loader  # type: ignore[union-attr]
        self._loader.exec_module(module)
        unwatch(self._watcher)
        self._watcher.callback()


def watch(name: str, callback: Callable[[], None]) -> Watcher | None:
    """Call ``callback()`` right after ``name`` is imported; None if it already is."""
    if name in sys.modules:
        return None
    watcher = Watcher(name, callback)
    with _lock:
        sys.meta_path.insert(0, watcher)
    return watcher


def unwatch(watcher: Watcher | None) -> None:
    """Stop watching; does nothing if ``watcher`` is already gone or None."""
    with _lock:
        if watcher in sys.meta_path:
            sys.meta_path.remove(watcher)
