"""Reversible attribute patches: put a replacement in, later put the exact original back.

An attribute the owner defined itself is restored by assignment; one it only
inherited (uvloop.Loop inherits its methods from the C base) is restored by
deleting ours, so that lookups reach the inherited object again. Either way,
after ``restore_all()`` every patched name resolves to the identical object
it resolved to before.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Patches"]

_INHERITED = object()


class Patches:
    """A stack of applied patches, undone together in reverse order."""

    def __init__(self) -> None:
        self._applied: list[tuple[Any, str, Any]] = []

    def apply(self, owner: Any, name: str, replacement: Any) -> Any:
        """Set ``owner.name = replacement``; return what ``owner.name`` was."""
        current = getattr(owner, name)
        own = vars(owner).get(name, _INHERITED)
        self._applied.append((owner, name, own))
        setattr(owner, name, replacement)
        return current

    def restore_all(self) -> None:
        while self._applied:
            owner, name, own = self._applied.pop()
            if own is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

    def __bool__(self) -> bool:
        return bool(self._applied)
