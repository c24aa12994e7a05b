"""A structlog processor that adds store values to every event.

Put ``StoreProcessor()`` in structlog's processor chain, before the renderer.
It needs nothing from structlog itself (a processor is a plain callable), so
importing this module does not import structlog.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from .._storage import AsyncLocalStorage
from ._fields import DEFAULT_MISSING, resolve_fields

__all__ = ["StoreProcessor"]


class StoreProcessor:
    """``processor(logger, method_name, event_dict)``: add each chosen store's value.

    ``fields`` maps event keys to stores; the default is
    ``{"request_id": request_id}``. A store with no value gives ``missing``
    (default ``"-"``). A key the event already has (bound or passed to the
    log call) is kept, not overwritten.
    """

    __slots__ = ("_fields", "_missing")

    def __init__(
        self,
        fields: Mapping[str, AsyncLocalStorage[Any]] | None = None,
        *,
        missing: Any = DEFAULT_MISSING,
    ) -> None:
        self._fields = resolve_fields(fields, reserved=frozenset({"event"}))
        self._missing = missing

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for name, store in self._fields:
            if name not in event_dict:
                value = store.get_store()
                event_dict[name] = self._missing if value is None else value
        return event_dict
