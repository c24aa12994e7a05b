"""The W3C baggage codec: round trips, the spec's syntax, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from async_hooks.errors import InvalidArgTypeError, InvalidBaggageError
from async_hooks.integrations.baggage import (
    MAX_BAGGAGE_BYTES,
    MAX_BAGGAGE_MEMBERS,
    decode_baggage,
    encode_baggage,
)

TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
keys = st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=20)
# Any text a serializer may produce, surrogates excepted (not encodable as UTF-8).
values = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(st.dictionaries(keys, values, max_size=10))
def test_any_mapping_of_tokens_to_text_round_trips(stores: dict[str, str]) -> None:
    assert decode_baggage(encode_baggage(stores)) == stores


def test_encoding_keeps_plain_values_readable_and_escapes_the_rest() -> None:
    header = encode_baggage({"request_id": "4bf9-2f35", "tenant": '"a,b; c"%'})
    assert header == "request_id=4bf9-2f35,tenant=%22a%2Cb%3B%20c%22%25"


def test_unicode_values_are_percent_encoded_utf8() -> None:
    assert encode_baggage({"city": "Zürich"}) == "city=Z%C3%BCrich"
    assert decode_baggage("city=Z%C3%BCrich") == {"city": "Zürich"}


def test_decoding_follows_the_spec_syntax() -> None:
    header = " a = 1 ;prop1;prop2=x ,, \tb=two%20words\t, c= "
    assert decode_baggage(header) == {"a": "1", "b": "two words", "c": ""}
    assert decode_baggage("") == {}
    assert decode_baggage("k=1,k=2") == {"k": "2"}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("novalue", "has no '=' and value"),
        ("=1", "invalid key"),
        ("bad key=1", "invalid key"),
        ("k=a b", "must be percent-encoded"),
        ('k="quoted"', "must be percent-encoded"),
        ("k=back\\slash", "must be percent-encoded"),
        ("k=caf\u00e9", "must be percent-encoded"),
        ("k=100%", "malformed '%' escape"),
        ("k=%zz", "malformed '%' escape"),
        ("k=%C3%28", "not percent-encoded UTF-8"),
        ("k=1;bad prop", "invalid key"),
        ("k=1\r\nX-Injected: yes", "must be percent-encoded"),
    ],
)
def test_malformed_headers_are_refused_with_the_problem_named(header: str, problem: str) -> None:
    with pytest.raises(InvalidBaggageError, match=problem) as caught:
        decode_baggage(header)
    assert caught.value.code == "ERR_INVALID_BAGGAGE"


def test_limits_are_the_w3c_ones_on_both_sides() -> None:
    at_limit = ",".join(f"k{i}=v" for i in range(MAX_BAGGAGE_MEMBERS))
    assert len(decode_baggage(at_limit)) == MAX_BAGGAGE_MEMBERS
    with pytest.raises(InvalidBaggageError, match="181 members; the W3C limit is 180"):
        decode_baggage(at_limit + ",one=more")
    with pytest.raises(InvalidBaggageError, match="181 members"):
        encode_baggage({f"k{i}": "v" for i in range(MAX_BAGGAGE_MEMBERS + 1)})

    fits = "k=" + "v" * (MAX_BAGGAGE_BYTES - 2)
    assert decode_baggage(fits) == {"k": "v" * (MAX_BAGGAGE_BYTES - 2)}
    with pytest.raises(InvalidBaggageError, match="8193 bytes; the W3C limit is 8192"):
        decode_baggage(fits + "v")
    with pytest.raises(InvalidBaggageError, match="bytes; the W3C limit is 8192"):
        encode_baggage({"k": "é" * 3000})  # 6 encoded bytes per character


def test_huge_hostile_input_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidBaggageError, match="bytes"):
        decode_baggage("," * 10_000_000)


def test_encoding_refuses_keys_that_are_not_tokens_and_non_text() -> None:
    with pytest.raises(InvalidBaggageError, match="'bad key' is not an HTTP token"):
        encode_baggage({"bad key": "v"})
    with pytest.raises(InvalidBaggageError, match="not encodable as UTF-8"):
        encode_baggage({"k": "\ud800"})
    with pytest.raises(InvalidArgTypeError, match="must be str"):
        encode_baggage({"k": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgTypeError, match="must be a mapping"):
        encode_baggage([("k", "v")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"header" argument must be of type str'):
        decode_baggage(b"k=v")  # type: ignore[arg-type]
