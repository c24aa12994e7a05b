"""Argument checks shared by the public classes, with Node's messages."""

from __future__ import annotations

from typing import Any

from .errors import (
    InvalidArgTypeError,
    InvalidAsyncIdTypeError,
    InvalidAsyncIdValueError,
    InvalidAsyncTypeError,
)


def describe(value: Any) -> str:
    """How Node names a received value in its messages: its type and a short repr."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"type {type(value).__name__} ({text})"


def not_callable_error(value: Any, name: str) -> InvalidArgTypeError:
    return InvalidArgTypeError(
        f'The "{name}" argument must be callable. Received {describe(value)}'
    )


def require_callable(value: Any, name: str) -> None:
    if not callable(value):
        raise not_callable_error(value, name)


def validate_async_type(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgTypeError(
            f'The "type" argument must be of type str. Received {describe(value)}'
        )
    if not value:
        raise InvalidAsyncTypeError(f'Invalid name for async "type": {value!r}')
    return value


def validate_trigger_async_id(value: Any) -> int:
    # bool is an int subclass, but True as an id is a bug, never an intent.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAsyncIdTypeError(f"Invalid triggerAsyncId value: {value!r}")
    if value < -1:
        raise InvalidAsyncIdValueError(f"Invalid triggerAsyncId value: {value}")
    return value
