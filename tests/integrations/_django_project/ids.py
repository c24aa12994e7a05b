"""A validator for the ``custom`` options of the test project."""

from __future__ import annotations

import re

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_only(value: str) -> bool:
    return UUID.fullmatch(value.lower()) is not None
