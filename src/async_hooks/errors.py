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
    "StoreSerializationError",
    "StoreSerializationWarning",
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
    """Stores that cannot go in a W3C ``baggage`` header: a key not a token, or too much.

    Raised by the sender only; a received header never raises, its bad members
    are left out.
    """

    code = "ERR_INVALID_BAGGAGE"


class StoreSerializationError(AsyncHooksError, ValueError):
    """A store's value could not be turned into text to cross a process or machine.

    The message names the store; the serializer's own error is the ``__cause__``.
    """

    code = "ERR_STORE_NOT_SERIALIZABLE"


class StoreSerializationWarning(RuntimeWarning):
    """A store was skipped at a process or machine boundary; the message names it.

    Raised as a warning, not an error, where dropping the store is the
    declared choice (``on_serialize_error="warn"``) or where the text came
    from elsewhere and cannot be trusted (an unknown name, a value that does
    not load).
    """

    code: ClassVar[str] = "ERR_STORE_NOT_SERIALIZABLE"
