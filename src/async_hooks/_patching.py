"""Reversible attribute patches: put a replacement in, later put the exact original back.

An attribute the owner defined itself is restored by assignment; one it only
inherited (uvloop.Loop inherits its methods from the C base) is restored by
deleting ours, so that lookups reach the inherited object again. Either way,
after ``restore_all()`` every patched name resolves to the identical object
it resolved to before.

Unless someone patched the same name on top of ours in the meantime (another
library, or ``async_hooks.install()``): putting our original back would
silently remove their wrapper. Ours then stays in their chain, *stranded*;
every replacement passes straight through to its original while no hook is
enabled, and a later ``apply`` of the same name reuses the stranded one
instead of stacking a second (and, if the other wrapper has gone meanwhile,
takes it back so that the next ``restore_all`` can undo it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_INHERITED = object()


class Patches:
    """A stack of applied patches, undone together in reverse order."""

    def __init__(self) -> None:
        self._applied: list[tuple[Any, str, Any, Any]] = []
        # (owner, name) -> (what the owner had before us, our replacement)
        self._stranded: dict[tuple[Any, str], tuple[Any, Any]] = {}

    def apply(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Set ``owner.name = make(current owner.name)``, unless ours is still there."""
        stranded = self._stranded.get((owner, name))
        if stranded is not None:
            own, replacement = stranded
            if vars(owner).get(name) is replacement:
                # Whoever wrapped ours has gone: it can be undone again.
                del self._stranded[(owner, name)]
                self._applied.append((owner, name, own, replacement))
            return
        own = vars(owner).get(name, _INHERITED)
        replacement = make(getattr(owner, name))
        self._applied.append((owner, name, own, replacement))
        setattr(owner, name, replacement)

    def restore_all(self) -> None:
        while self._applied:
            owner, name, own, replacement = self._applied.pop()
            if vars(owner).get(name) is not replacement:
                self._stranded[(owner, name)] = (own, replacement)
            elif own is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

    def __bool__(self) -> bool:
        return bool(self._applied)
