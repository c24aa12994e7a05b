"""Fixtures of the propagation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from async_hooks.propagation import installed, uninstall

from ._jobs import clear_all


@pytest.fixture
def clean_stores() -> Iterator[None]:
    """Empty test stores before and after, and install() undone."""
    clear_all()
    yield
    clear_all()
    if installed():
        uninstall()
