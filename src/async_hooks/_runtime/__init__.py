"""Tracking of the runtime's own resources (asyncio, uvloop, trio, threads).

Importing this package registers one activation listener: the first enabled
hook patches asyncio's loop classes (and uvloop's) and asyncio's Server, and
has ``Thread.start`` wrapped (by ``async_hooks/_thread_start.py``, which
``install()`` shares); the last disabled hook restores every original object.
With no hook enabled, nothing of the runtime is touched. See docs/runtime.md.
"""

from __future__ import annotations

import sys

from .. import _hooks
from . import _import_watch
from ._asyncio import patch_asyncio, unpatch_asyncio
from ._network import patch_network, unpatch_network
from ._threads import patch_threads, unpatch_threads

_tracking = False
# Watches for `import trio` while tracking is on and trio is not imported yet.
_trio_watch: _import_watch.Watcher | None = None


def _on_activation(active: bool) -> None:
    global _tracking
    if active:
        patch_asyncio()
        patch_network()
        patch_threads()
        _track_trio_if_imported()
    else:
        _import_watch.unwatch(_trio_watch)
        unpatch_threads()
        unpatch_network()
        unpatch_asyncio()
    _tracking = active


def _track_trio_if_imported() -> None:
    # trio is an optional extra: only a program that imports it gets its
    # tracking (which then follows the hooks on its own), whether it imported
    # trio before the first hook was enabled or does so later; see docs/trio.md.
    global _trio_watch
    if sys.modules.get("trio") is not None:
        _track_trio()
    else:
        _trio_watch = _import_watch.watch("trio", _track_trio)


def _track_trio() -> None:
    from ._trio import enable_auto_tracking

    enable_auto_tracking()


def is_tracking() -> bool:
    """True while the runtime is patched (at least one hook is enabled)."""
    return _tracking


_hooks.add_activation_listener(_on_activation)
