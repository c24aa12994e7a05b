"""A loguru patcher that adds store values to every record's ``extra``.

``logger.configure(patcher=StorePatcher())`` (or ``logger.patch(...)``) makes
``{extra[request_id]}`` usable in any format, and puts the values in
``serialize=True`` output. Importing this module does not import loguru.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._storage import AsyncLocalStorage
from ._fields import DEFAULT_MISSING, resolve_fields

__all__ = ["StorePatcher"]


class StorePatcher:
    """``patcher(record)``: set ``record["extra"][name]`` for each chosen store.

    ``fields`` maps extra keys to stores; the default is
    ``{"request_id": request_id}``. A store with no value gives ``missing``
    (default ``"-"``). A key already in ``extra`` (from ``bind`` or
    ``contextualize``) is kept, not overwritten.
    """

    __slots__ = ("_fields", "_missing")

    def __init__(
        self,
        fields: Mapping[str, AsyncLocalStorage[Any]] | None = None,
        *,
        missing: Any = DEFAULT_MISSING,
    ) -> None:
        self._fields = resolve_fields(fields)
        self._missing = missing

    # loguru's Record is a TypedDict known only to type checkers; any mapping
    # with an "extra" dict is accepted here.
    def __call__(self, record: Any) -> None:
        extra = record["extra"]
        for name, store in self._fields:
            if name not in extra:
                value = store.get_store()
                extra[name] = self._missing if value is None else value
