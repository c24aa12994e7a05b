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

from ..propagation import JSON, Crossing
from ..storage import AsyncLocalStorage

__all__ = [
    "DEFAULT_HEADER",
    "MAX_REQUEST_ID_LENGTH",
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
# follow the work into threads, pools, processes and other services.
request_id: AsyncLocalStorage[str] = AsyncLocalStorage(
    name="request_id", crosses=Crossing.ALL, serializer=JSON
)


# Random bytes are read from the OS a batch at a time, as Node's
# crypto.randomUUID() does: one getrandom() call per id costs more than
# everything else the middleware does for a request. Taking the next chunk is
# a single C call (atomic under the GIL), so threads never share a chunk; a
# forked child drops the batch it inherited, so it never repeats its parent.
_IDS_PER_BATCH = 128
_random_chunks: Iterator[bytes] = iter(())


def _refill() -> Iterator[bytes]:
    global _random_chunks
    block = os.urandom(16 * _IDS_PER_BATCH)
    _random_chunks = iter([block[start : start + 16] for start in range(0, len(block), 16)])
    return _random_chunks


def _forget_batch() -> None:
    global _random_chunks
    _random_chunks = iter(())


os.register_at_fork(after_in_child=_forget_batch)


def new_request_id() -> str:
    """A fresh random request id: a random (version 4) UUID as 32 lowercase hex digits.

    The same format as ``uuid.uuid4().hex``, from the OS's random source.
    """
    raw = next(_random_chunks, None)
    if raw is None:
        raw = next(_refill())
    chunk = bytearray(raw)
    chunk[6] = (chunk[6] & 0x0F) | 0x40  # version 4
    chunk[8] = (chunk[8] & 0x3F) | 0x80  # RFC 4122 variant
    return chunk.hex()


def is_valid_request_id(value: str) -> bool:
    """True when ``value`` is 1 to 128 characters of ``[A-Za-z0-9._-]``."""
    return isinstance(value, str) and _VALID_REQUEST_ID.fullmatch(value) is not None
