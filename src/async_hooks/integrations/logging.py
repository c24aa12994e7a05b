"""A ``logging.Filter`` that copies store values onto every log record.

Once the filter is on a handler, every record the handler emits carries one
attribute per chosen store (``record.request_id`` by default), so any
formatter can show it: ``%(request_id)s`` in a format string, or a field of
python-json-logger's JSON output. The filter never drops a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .._storage import AsyncLocalStorage
from ._fields import DEFAULT_MISSING, resolve_fields

__all__ = ["StoreFilter"]

# Attributes every LogRecord has: a field with one of these names would
# silently replace the record's own data.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class StoreFilter(logging.Filter):
    """Put the current value of each chosen store on every record.

    ``fields`` maps record attribute names to stores; the default is
    ``{"request_id": request_id}``. Where a store has no value (outside any
    request), the attribute is ``missing`` (default ``"-"``). A value passed
    explicitly with ``extra=`` is kept, not overwritten.

    Add the filter to handlers rather than loggers: a logger's filters do not
    see records that its child loggers propagate up to it.
    """

    def __init__(
        self,
        fields: Mapping[str, AsyncLocalStorage[Any]] | None = None,
        *,
        missing: Any = DEFAULT_MISSING,
    ) -> None:
        super().__init__()
        self._fields = resolve_fields(fields, reserved=_RECORD_ATTRIBUTES)
        self._missing = missing

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        for name, store in self._fields:
            if name not in attributes:
                value = store.get_store()
                attributes[name] = self._missing if value is None else value
        return True
