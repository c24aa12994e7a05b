"""Exceptions raised by async_hooks.

Each is the Python exception a Python developer would expect (TypeError for a
wrong type, ValueError for a wrong value, RuntimeError for a wrong state) and
also carries Node's error code in ``code``, so code ported from Node can keep
matching on ``err.code``. Codes that Node does not have are named in Node's
style and listed in docs/errors.md.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AsyncHooksError",
    "InvalidArgTypeError",
    "InvalidArgValueError",
    "InvalidAsyncCallbackError",
    "InvalidAsyncIdTypeError",
    "InvalidAsyncIdValueError",
    "InvalidAsyncTypeError",
    "InvalidBaggageError",
    "ResourceDestroyedError",
]


class AsyncHooksError(Exception):
    """Base class of every error async_hooks raises on purpose."""

    code: ClassVar[str]


class InvalidArgTypeError(AsyncHooksError, TypeError):
    """An argument has the wrong type (a non-callable ``fn``, a non-str ``type``)."""

    code = "ERR_INVALID_ARG_TYPE"


class InvalidArgValueError(AsyncHooksError, ValueError):
    """An argument has the right type but a value that cannot be used."""

    code = "ERR_INVALID_ARG_VALUE"


class InvalidAsyncTypeError(AsyncHooksError, ValueError):
    """An AsyncResource was given an empty ``type``."""

    code = "ERR_ASYNC_TYPE"


class InvalidAsyncIdTypeError(AsyncHooksError, TypeError):
    """A trigger async id that is not an int (bool included)."""

    code = "ERR_INVALID_ASYNC_ID"


class InvalidAsyncIdValueError(AsyncHooksError, ValueError):
    """A trigger async id below -1."""

    code = "ERR_INVALID_ASYNC_ID"


class InvalidAsyncCallbackError(AsyncHooksError, TypeError):
    """A hook callback that is neither absent (None) nor callable."""

    code = "ERR_ASYNC_CALLBACK"


class ResourceDestroyedError(AsyncHooksError, RuntimeError):
    """``emit_destroy()`` was called on a resource that was already destroyed."""

    code = "ERR_ASYNC_RESOURCE_DESTROYED"


class InvalidBaggageError(AsyncHooksError, ValueError):
    """A W3C ``baggage`` header that is malformed or over the W3C size limits."""

    code = "ERR_INVALID_BAGGAGE"
