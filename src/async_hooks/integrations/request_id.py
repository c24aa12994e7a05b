"""The request id: one store shared by every integration.

Servers (ASGI, WSGI, aiohttp middlewares) enter it for each request, logging
integrations read it, and outgoing clients and task queues forward it. An id
that arrives from outside is untrusted input: it is used only when
``is_valid_request_id`` accepts it, otherwise a fresh one replaces it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from .._policy import JSON, Crossing
from .._storage import AsyncLocalStorage
from .._validation import describe
from ..errors import InvalidArgTypeError, InvalidArgValueError

__all__ = [
    "DEFAULT_HEADER",
    "MAX_REQUEST_ID_LENGTH",
    "check_header_name",
    "is_valid_request_id",
    "new_request_id",
    "request_id",
]

DEFAULT_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128

# Only characters that are safe in a header, a log line and a file name:
# an id copied into logs must not be able to forge lines or inject markup.
_VALID_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

# Crosses everything, as JSON text where it must: a request id is meant to
# follow the work into threads, pools, processes and other services. Stores
# that cross processes need unique names; ours is namespaced, so that a user's
# own store called "request_id" does not clash with it.
request_id: AsyncLocalStorage[str] = AsyncLocalStorage(
    name="async_hooks.request_id", crosses=Crossing.ALL, serializer=JSON
)


# Random bytes are read from the OS a batch at a time, as Node's
# crypto.randomUUID() does: one getrandom() call per id costs more than
# everything else the middleware does for a request. Each batch becomes
# ready-made ids at once; taking the next one is a single C call (atomic
# under the GIL), so threads never share an id, and a forked child drops the
# batch it inherited, so it never repeats its parent.
_IDS_PER_BATCH = 128
_ready_ids: Iterator[str] = iter(())


def _refill() -> Iterator[str]:
    global _ready_ids
    digits = os.urandom(16 * _IDS_PER_BATCH).hex()
    _ready_ids = iter(
        [_as_uuid4(digits[start : start + 32]) for start in range(0, len(digits), 32)]
    )
    return _ready_ids


def _as_uuid4(digits: str) -> str:
    # Digit 12 holds the version (4); the two top bits of digit 16, the RFC
    # 4122 variant (binary 10), which leaves 8, 9, a or b.
    return digits[:12] + "4" + digits[13:16] + "89ab"[int(digits[16], 16) & 3] + digits[17:]


def _forget_batch() -> None:
    global _ready_ids
    _ready_ids = iter(())


os.register_at_fork(after_in_child=_forget_batch)


def new_request_id() -> str:
    """A fresh random request id: a random (version 4) UUID as 32 lowercase hex digits.

    The same format as ``uuid.uuid4().hex``, from the OS's random source.
    """
    return next(_ready_ids, None) or next(_refill())


def is_valid_request_id(value: str) -> bool:
    """True when ``value`` is 1 to 128 characters of ``[A-Za-z0-9._-]``."""
    return isinstance(value, str) and _VALID_REQUEST_ID.fullmatch(value) is not None


# An HTTP token (RFC 9110): what a header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_header_name(name: object, argument: str = "request_id_header") -> str:
    """``name`` if it can be an HTTP header name, else a clear error naming ``argument``."""
    if not isinstance(name, str):
        raise InvalidArgTypeError(
            f'The "{argument}" argument must be of type str. Received {describe(name)}'
        )
    if _HEADER_NAME.fullmatch(name) is None:
        raise InvalidArgValueError(f"{name!r} is not a valid HTTP header name")
    return name
