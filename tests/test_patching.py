"""The private ``_patching.Patches`` behind tracking and install(): exact originals back.

And never someone else's wrapper lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from async_hooks._patching import Patches


class Base:
    def greet(self) -> str:
        return "base"


class Own(Base):
    def greet(self) -> str:
        return "own"


class Inherits(Base):
    pass


def _shout(original: Callable[[Any], str]) -> Callable[[Any], str]:
    def greet(self: Any) -> str:
        return original(self).upper()

    return greet


def test_own_and_inherited_attributes_come_back_identical() -> None:
    own_before, inherited_before = Own.greet, Inherits.greet
    patches = Patches()
    patches.apply(Own, "greet", _shout)
    patches.apply(Inherits, "greet", _shout)
    assert Own().greet() == "OWN"
    assert Inherits().greet() == "BASE"
    patches.restore_all()
    assert Own.greet is own_before
    assert Inherits.greet is inherited_before
    assert "greet" not in vars(Inherits)
    assert not patches


def test_a_patch_wrapped_by_someone_else_is_left_in_their_chain() -> None:
    class Target(Base):
        pass

    patches = Patches()
    patches.apply(Target, "greet", _shout)
    ours = Target.greet

    def theirs(self: Any) -> str:
        return ours(self) + "!"

    Target.greet = theirs  # type: ignore[method-assign]
    patches.restore_all()
    # Restoring ours would have dropped theirs: both stay.
    assert Target.greet is theirs
    assert Target().greet() == "BASE!"
    # Applying again reuses the stranded one rather than stacking another.
    patches.apply(Target, "greet", _shout)
    assert Target.greet is theirs
    assert Target().greet() == "BASE!"


def test_a_stranded_patch_is_undone_once_the_wrapper_on_top_has_gone() -> None:
    class Target(Base):
        pass

    patches = Patches()
    patches.apply(Target, "greet", _shout)
    ours = Target.greet

    def theirs(self: Any) -> str:
        return ours(self) + "!"

    Target.greet = theirs  # type: ignore[method-assign]
    patches.restore_all()  # stranded under theirs
    Target.greet = ours  # type: ignore[method-assign]  # they uninstalled themselves
    patches.apply(Target, "greet", _shout)  # reuses ours, which is on top again
    assert Target.greet is ours
    patches.restore_all()
    assert "greet" not in vars(Target)
    assert Target.greet is Base.greet
