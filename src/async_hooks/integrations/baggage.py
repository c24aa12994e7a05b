"""A codec for the W3C ``baggage`` HTTP header (https://www.w3.org/TR/baggage/).

Declared stores cross to another service as baggage members, one member per
store: ``request_id=4bf92f35,tenant=%22acme%22``. Keys are HTTP tokens;
values are percent-encoded UTF-8, so any text survives the trip. Member
properties (``;key=value`` after a value) are accepted and ignored when
decoding, since no store uses them::

    decode_baggage(header, on_skipped=problems.append)  # {key: text}

The header comes from the network, so decoding never fails on it and its
cost is bounded: as the specification asks, a malformed list-member is
skipped and the others are kept, members past the limits (64 list-members,
8192 bytes) are dropped whole, never cut, and each problem is handed to
``on_skipped`` as a sentence, so that the caller reports it once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
# The limits of the W3C Baggage specification ("Limits"): every platform
# must propagate at least 64 list-members and 8192 bytes, so that is what we
# send at most, and what we read.
MAX_BAGGAGE_BYTES = 8192
MAX_BAGGAGE_MEMBERS = 64

# RFC 9110 token characters: what a key (and a property key) may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# W3C baggage-octet: printable ASCII except space, '"', ',', ';' and '\'.
_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters left as they are when encoding: every baggage-octet but '%',
# which must itself be encoded so that decoding gives back the same text,
# and '+', which OpenTelemetry's Python propagator decodes as a space.
_SAFE_IN_VALUE = "".join(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%+,;\\' and not chr(c).isalnum()
)
_OWS = " \t"
# How much of a key from the network is quoted in a problem: enough to
# recognise it. Values are never quoted: they may hold anything.
_QUOTED = 40


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


def decode_baggage(
    header: str, *, on_skipped: Callable[[str], object] | None = None
) -> dict[str, str]:
    """Decode a ``baggage`` header value into ``{key: text}``; never fails on the header.

    Values are percent-decoded; properties are dropped; empty list members
    are skipped (HTTP list syntax allows them); when a key repeats, the last
    member wins. What does not fit the specification is left out and
    described to ``on_skipped``, one sentence per problem: each malformed
    member (the others are kept), and at most one sentence each for the
    members past 64 and past 8192 bytes, which are dropped whole. Only a
    ``header`` that is not a str raises (``InvalidArgTypeError``).
    """
    if not isinstance(header, str):
        raise InvalidArgTypeError(
            f'The "header" argument must be of type str. Received {describe(header)}'
        )
    skipped = _ignore if on_skipped is None else on_skipped
    header = _within_size_limit(header, skipped)
    decoded: dict[str, str] = {}
    kept = 0
    for position, member in enumerate(header.split(","), start=1):
        member = member.strip(_OWS)
        if not member:
            continue
        if kept == MAX_BAGGAGE_MEMBERS:
            skipped(
                f"Baggage members from member {position} on were dropped: "
                f"the W3C limit is {MAX_BAGGAGE_MEMBERS} members"
            )
            break
        try:
            key, value = _parse_member(member, position)
        except InvalidBaggageError as error:
            skipped(str(error))
            continue
        decoded[key] = value
        kept += 1
    return decoded


def _ignore(problem: str) -> None:
    pass


def _within_size_limit(header: str, skipped: Callable[[str], object]) -> str:
    """``header``, less the members that end past byte 8192."""
    # str.isascii() is O(1) in CPython: the common case costs no encoding.
    size = len(header) if header.isascii() else len(header.encode("utf-8", "replace"))
    if size <= MAX_BAGGAGE_BYTES:
        return header
    # Only the first 8193 bytes are looked at, so that hostile input costs
    # nothing more; a char is at least one byte, so that many chars suffice.
    prefix = header[: MAX_BAGGAGE_BYTES + 1].encode("utf-8", "replace")[: MAX_BAGGAGE_BYTES + 1]
    # The last piece before byte 8193 is cut (or empty when a ',' is the
    # 8193rd byte): the specification allows dropping whole members only.
    kept = prefix.decode("utf-8", "replace").rpartition(",")[0]
    skipped(
        f"Baggage header is {size} bytes; the members past the W3C limit of "
        f"{MAX_BAGGAGE_BYTES} bytes were dropped"
    )
    return kept


def _parse_member(member: str, position: int) -> tuple[str, str]:
    """``(key, text)`` of one stripped, non-empty list member, else ``InvalidBaggageError``."""
    pair, *properties = member.split(";")
    key, value = _split_pair(pair, position)
    if value is None:
        raise InvalidBaggageError(f"Baggage member {position} ({key!r}) has no '=' and value")
    for item in properties:
        _split_pair(item, position)
    return key, _percent_decode(value, key)


def _split_pair(text: str, position: int) -> tuple[str, str | None]:
    """Parse ``key OWS = OWS value`` (or a bare ``key``, for properties)."""
    key, equals, value = text.partition("=")
    key = key.strip(_OWS)
    if _TOKEN.fullmatch(key) is None:
        raise InvalidBaggageError(f"Baggage member {position} has an invalid key {key[:_QUOTED]!r}")
    if not equals:
        return key, None
    value = value.strip(_OWS)
    if _VALUE.fullmatch(value) is None:
        raise InvalidBaggageError(
            f"Baggage member {position} ({key[:_QUOTED]!r}) has a value with characters "
            "that must be percent-encoded"
        )
    return key, value


def _percent_decode(value: str, key: str) -> str:
    if _BAD_PERCENT.search(value) is not None:
        raise InvalidBaggageError(
            f"The baggage value of {key[:_QUOTED]!r} has a malformed '%' escape"
        )
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBaggageError(
            f"The baggage value of {key[:_QUOTED]!r} is not percent-encoded UTF-8"
        ) from None
