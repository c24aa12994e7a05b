"""A codec for the W3C ``baggage`` HTTP header (https://www.w3.org/TR/baggage/).

Declared stores cross to another service as baggage members, one member per
store: ``request_id=4bf92f35,tenant=%22acme%22``. Keys are HTTP tokens;
values are percent-encoded UTF-8, so any text survives the trip. Member
properties (``;key=value`` after a value) are accepted and ignored when
decoding, since no store uses them.

The header comes from the network, so decoding is strict and bounded: input
over the W3C limits (8192 bytes, 180 members) is refused before it is parsed,
and anything malformed raises ``InvalidBaggageError``, which servers turn
into a logged warning; nothing half-parsed is ever returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote_to_bytes

from .._validation import describe
from ..errors import InvalidArgTypeError, InvalidBaggageError

__all__ = [
    "BAGGAGE_HEADER",
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "decode_baggage",
    "encode_baggage",
]

BAGGAGE_HEADER = "baggage"
MAX_BAGGAGE_BYTES = 8192
MAX_BAGGAGE_MEMBERS = 180

# RFC 9110 token characters: what a key (and a property key) may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# W3C baggage-octet: printable ASCII except space, '"', ',', ';' and '\'.
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters left as they are when encoding: every baggage-octet but '%',
# which must itself be encoded so that decoding gives back the same text.
_SAFE_IN_VALUE = "".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%,;\\' and not chr(c).isalnum()
)
_OWS = " \t"


def encode_baggage(stores: Mapping[str, str]) -> str:
    """Encode ``{key: text}`` as a ``baggage`` header value.

    Keys must be HTTP tokens; values may be any text (they are
    percent-encoded). Raises ``InvalidBaggageError`` for a key that is not a
    token or a result over the W3C limits, ``InvalidArgTypeError`` for a key
    or value that is not a str.
    """
    if not isinstance(stores, Mapping):
        raise InvalidArgTypeError(
            f'The "stores" argument must be a mapping. Received {describe(stores)}'
        )
    if len(stores) > MAX_BAGGAGE_MEMBERS:
        raise InvalidBaggageError(
            f"Baggage would have {len(stores)} members; the W3C limit is {MAX_BAGGAGE_MEMBERS}"
        )
    members = []
    for key, value in stores.items():
        if not isinstance(key, str):
            raise InvalidArgTypeError(f"Baggage keys must be str. Received {describe(key)}")
        if not isinstance(value, str):
            raise InvalidArgTypeError(
                f"The baggage value of {key!r} must be str. Received {describe(value)}"
            )
        if _TOKEN.fullmatch(key) is None:
            raise InvalidBaggageError(f"Baggage key {key!r} is not an HTTP token")
        try:
            encoded = quote(value, safe=_SAFE_IN_VALUE, encoding="utf-8", errors="strict")
        except UnicodeEncodeError as error:
            raise InvalidBaggageError(
                f"The baggage value of {key!r} is not encodable as UTF-8: {error.reason}"
            ) from None
        members.append(f"{key}={encoded}")
    header = ",".join(members)
    if len(header) > MAX_BAGGAGE_BYTES:
        raise InvalidBaggageError(
            f"Baggage would be {len(header)} bytes; the W3C limit is {MAX_BAGGAGE_BYTES}"
        )
    return header


def decode_baggage(header: str) -> dict[str, str]:
    """Decode a ``baggage`` header value into ``{key: text}``.

    Values are percent-decoded; properties are dropped; empty list members
    are skipped (HTTP list syntax allows them); when a key repeats, the last
    member wins. Raises ``InvalidBaggageError`` naming the problem for input
    that is malformed or over the W3C limits.
    """
    if not isinstance(header, str):
        raise InvalidArgTypeError(
            f'The "header" argument must be of type str. Received {describe(header)}'
        )
    # Refused before parsing, so that hostile input costs nothing to reject.
    # A str is never shorter in UTF-8 than in characters: check that first.
    size = len(header)
    if size <= MAX_BAGGAGE_BYTES:
        size = len(header.encode("utf-8", "replace"))
    if size > MAX_BAGGAGE_BYTES:
        raise InvalidBaggageError(
            f"Baggage header is {size} bytes; the W3C limit is {MAX_BAGGAGE_BYTES}"
        )
    members = [member.strip(_OWS) for member in header.split(",")]
    members = [member for member in members if member]
    if len(members) > MAX_BAGGAGE_MEMBERS:
        raise InvalidBaggageError(
            f"Baggage header has {len(members)} members; the W3C limit is {MAX_BAGGAGE_MEMBERS}"
        )
    decoded: dict[str, str] = {}
    for position, member in enumerate(members, start=1):
        pair, *properties = member.split(";")
        key, value = _split_pair(pair, position)
        if value is None:
            raise InvalidBaggageError(f"Baggage member {position} ({key!r}) has no '=' and value")
        for item in properties:
            _split_pair(item, position)
        decoded[key] = _percent_decode(value, key)
    return decoded


def _split_pair(text: str, position: int) -> tuple[str, str | None]:
    """Parse ``key OWS = OWS value`` (or a bare ``key``, for properties)."""
    key, equals, value = text.partition("=")
    key = key.strip(_OWS)
    if _TOKEN.fullmatch(key) is None:
        raise InvalidBaggageError(f"Baggage member {position} has an invalid key {key[:40]!r}")
    if not equals:
        return key, None
    value = value.strip(_OWS)
    if _VALUE.fullmatch(value) is None:
        raise InvalidBaggageError(
            f"Baggage member {position} ({key!r}) has a value with characters "
            "that must be percent-encoded"
        )
    return key, value


def _percent_decode(value: str, key: str) -> str:
    if _BAD_PERCENT.search(value) is not None:
        raise InvalidBaggageError(f"The baggage value of {key!r} has a malformed '%' escape")
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBaggageError(
            f"The baggage value of {key!r} is not percent-encoded UTF-8"
        ) from None
