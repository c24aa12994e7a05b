"""A validator and a generator for the ``custom`` options of the test project."""

from __future__ import annotations

import itertools
import os
import re

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_only(value: str) -> bool:
    return UUID.fullmatch(value.lower()) is not None


_numbers = itertools.count(1)


def numbered_id() -> str:
    """Ids that say which process made them, in order: ``custom-<pid>-<n>``."""
    return f"custom-{os.getpid()}-{next(_numbers)}"
