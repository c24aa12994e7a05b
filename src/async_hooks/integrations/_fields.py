"""The choice of stores that logging integrations copy onto each record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._storage import AsyncLocalStorage
from .._validation import describe
from ..errors import InvalidArgTypeError, InvalidArgValueError
from .request_id import request_id

# (field name, store) pairs. The store itself is kept, not its bound
# get_store, because disable() gives the store a new one.
Fields = tuple[tuple[str, AsyncLocalStorage[Any]], ...]

DEFAULT_MISSING = "-"


def resolve_fields(
    fields: Mapping[str, AsyncLocalStorage[Any]] | None,
    *,
    reserved: frozenset[str] = frozenset(),
) -> Fields:
    """Validate ``{field name: store}``; the default is ``{"request_id": request_id}``."""
    if fields is None:
        fields = {"request_id": request_id}
    if not isinstance(fields, Mapping):
        raise InvalidArgTypeError(
            f'The "fields" argument must be a mapping of names to AsyncLocalStorage. '
            f"Received {describe(fields)}"
        )
    resolved = []
    for name, store in fields.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgValueError(f"Log field names must be identifiers. Received {name!r}")
        if name in reserved:
            raise InvalidArgValueError(
                f"Log field {name!r} would overwrite a built-in attribute of the log record"
            )
        if not isinstance(store, AsyncLocalStorage):
            raise InvalidArgTypeError(
                f"Log field {name!r} must map to an AsyncLocalStorage. Received {describe(store)}"
            )
        resolved.append((name, store))
    return tuple(resolved)
