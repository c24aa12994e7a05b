"""Tracking of the runtime's own resources (asyncio, uvloop, trio, threads).

Importing this package registers one activation listener: the first enabled
hook patches asyncio's loop classes (and uvloop's) and ``Thread.start``; the
last disabled hook restores every original object. With no hook enabled,
nothing of the runtime is touched. See docs/runtime.md.
"""

from __future__ import annotations

from .. import hooks
from .asyncio_tracking import patch_asyncio, unpatch_asyncio
from .threads import patch_threads, unpatch_threads

__all__ = ["is_tracking"]

_tracking = False


def _on_activation(active: bool) -> None:
    global _tracking
    if active:
        patch_asyncio()
        patch_threads()
    else:
        unpatch_threads()
        unpatch_asyncio()
    _tracking = active


def is_tracking() -> bool:
    """True while the runtime is patched (at least one hook is enabled)."""
    return _tracking


hooks.add_activation_listener(_on_activation)
