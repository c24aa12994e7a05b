"""The headers an outgoing HTTP request carries so that the next service has our context.

Two headers, read back by the server middlewares of this package:

* ``baggage`` (W3C): every store whose policy includes ``Crossing.REMOTE``
  and that has a value here, serialized with its own serializer (except the
  request id, which has its own header);
* ``X-Request-ID`` (or the name you choose): the current request id.

The client integrations (httpx, requests, aiohttp) call
:func:`add_outgoing_headers` from their library's own extension point; any
other client can call it too, on whatever mutable headers mapping it has.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping

from ..errors import InvalidBaggageError
from ._carrier import outgoing_carrier
from .baggage import BAGGAGE_HEADER, MAX_BAGGAGE_BYTES, encode_baggage
from .request_id import DEFAULT_HEADER, check_header_name

__all__ = ["add_outgoing_headers", "outgoing_headers"]


def outgoing_headers(*, request_id_header: str = DEFAULT_HEADER) -> dict[str, str]:
    """The context headers for a request sent now; empty when there is nothing to carry.

    Raises ``StoreSerializationError`` when a store's value cannot be
    serialized (and its policy says "raise"), ``InvalidBaggageError`` when
    the stores do not fit in a baggage header (a store name that is not an
    HTTP token, more than 8192 bytes or 180 members).
    """
    if request_id_header is not DEFAULT_HEADER:
        check_header_name(request_id_header)
    return outgoing_carrier(BAGGAGE_HEADER, request_id_header, _baggage)


def _baggage(stores: dict[str, str]) -> str:
    return _encode_members(tuple(stores.items()))


@functools.lru_cache(maxsize=256)
def _encode_members(members: tuple[tuple[str, str], ...]) -> str:
    # The same few store values go out again and again (every call a request
    # makes, every request of a tenant); their texts are immutable str, so the
    # encoded header can be reused safely. Errors are raised, never cached.
    return encode_baggage(dict(members))


def add_outgoing_headers(
    headers: MutableMapping[str, str], *, request_id_header: str = DEFAULT_HEADER
) -> None:
    """Add the context headers to ``headers``, a case-insensitive headers mapping.

    What the caller set explicitly is kept: a request id header already
    there wins, and our baggage members are appended after an existing
    ``baggage`` header (W3C keeps both; for a key in both, ours comes last,
    which is the one the middlewares of this package use). Calling it again
    on the same headers, as clients do for each redirect, adds nothing.
    """
    ours = outgoing_headers(request_id_header=request_id_header)
    baggage = ours.pop(BAGGAGE_HEADER, None)
    if baggage is not None:
        existing = headers.get(BAGGAGE_HEADER)
        if not existing:
            headers[BAGGAGE_HEADER] = baggage
        elif existing != baggage and not existing.endswith("," + baggage):
            combined = f"{existing},{baggage}"
            if len(combined) > MAX_BAGGAGE_BYTES:
                raise InvalidBaggageError(
                    f"Baggage would be {len(combined)} bytes with the header already on the "
                    f"request; the W3C limit is {MAX_BAGGAGE_BYTES}"
                )
            headers[BAGGAGE_HEADER] = combined
    for name, value in ours.items():
        if name not in headers:
            headers[name] = value
