"""The W3C baggage codec: round trips, the spec's syntax and limits, and hostile input."""

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


def decode_with_problems(header: str) -> tuple[dict[str, str], list[str]]:
    problems: list[str] = []
    return decode_baggage(header, on_skipped=problems.append), problems


@given(st.dictionaries(keys, values, max_size=10))
def test_any_mapping_of_tokens_to_text_round_trips(stores: dict[str, str]) -> None:
    assert decode_with_problems(encode_baggage(stores)) == (stores, [])


def test_encoding_keeps_plain_values_readable_and_escapes_the_rest() -> None:
    header = encode_baggage({"request_id": "4bf9-2f35", "tenant": '"a,b; c"%+'})
    assert header == "request_id=4bf9-2f35,tenant=%22a%2Cb%3B%20c%22%25%2B"


def test_unicode_values_are_percent_encoded_utf8() -> None:
    assert encode_baggage({"city": "Zürich"}) == "city=Z%C3%BCrich"
    assert decode_baggage("city=Z%C3%BCrich") == {"city": "Zürich"}


def test_decoding_follows_the_spec_syntax() -> None:
    header = " a = 1 ;prop1;prop2=x ,, \tb=two%20words\t, c= , d=1+1"
    assert decode_with_problems(header) == (
        {"a": "1", "b": "two words", "c": "", "d": "1+1"},
        [],
    )
    assert decode_baggage("") == {}
    assert decode_baggage("k=1,k=2") == {"k": "2"}


@pytest.mark.parametrize(
    ("member", "problem"),
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
def test_a_malformed_member_is_skipped_and_the_others_kept(member: str, problem: str) -> None:
    decoded, problems = decode_with_problems(f"before=1, {member} ,after=2")
    assert decoded == {"before": "1", "after": "2"}
    [described] = problems
    assert problem in described
    assert "member 2" in described or "'k'" in described
    # Without a listener the member is skipped just the same.
    assert decode_baggage(member) == {}


def test_a_problem_never_quotes_a_value() -> None:
    _, [problem] = decode_with_problems("k=secret%zz")
    assert "secret" not in problem


def test_the_member_limit_is_the_w3c_one_on_both_sides() -> None:
    assert MAX_BAGGAGE_MEMBERS == 64
    at_limit = ",".join(f"k{i}=v" for i in range(MAX_BAGGAGE_MEMBERS))
    assert decode_with_problems(at_limit) == ({f"k{i}": "v" for i in range(64)}, [])
    decoded, problems = decode_with_problems(at_limit + ",one=more,and=another")
    assert decoded == {f"k{i}": "v" for i in range(64)}
    assert problems == [
        "Baggage members from member 65 on were dropped: the W3C limit is 64 members"
    ]
    # Malformed members are not counted: 64 good ones are kept around them.
    decoded, problems = decode_with_problems("bad key=1," + at_limit)
    assert len(decoded) == 64
    assert len(problems) == 1
    with pytest.raises(InvalidBaggageError, match="65 members; the W3C limit is 64"):
        encode_baggage({f"k{i}": "v" for i in range(MAX_BAGGAGE_MEMBERS + 1)})


def test_the_size_limit_drops_whole_members_never_part_of_one() -> None:
    assert MAX_BAGGAGE_BYTES == 8192
    fits = "k=" + "v" * (MAX_BAGGAGE_BYTES - 2)
    assert decode_with_problems(fits) == ({"k": "v" * (MAX_BAGGAGE_BYTES - 2)}, [])
    decoded, [problem] = decode_with_problems(fits + "v")
    assert decoded == {}
    assert problem == (
        "Baggage header is 8193 bytes; the members past the W3C limit of 8192 bytes were dropped"
    )
    # The members that end by byte 8192 are kept, the one across it is not.
    first = "a=" + "1" * 4000
    second = "b=" + "2" * (MAX_BAGGAGE_BYTES - len(first) - 1 - 2)
    assert decode_with_problems(f"{first},{second}")[0] == {"a": "1" * 4000, "b": second[2:]}
    assert decode_with_problems(f"{first},{second},c=3")[0].keys() == {"a", "b"}
    assert decode_with_problems(f"{first},{second}3")[0].keys() == {"a"}
    with pytest.raises(InvalidBaggageError, match="bytes; the W3C limit is 8192"):
        encode_baggage({"k": "é" * 3000})  # 6 encoded bytes per character


def test_huge_hostile_input_costs_no_more_than_8_kb() -> None:
    decoded, [problem] = decode_with_problems("k=v" + "," * 10_000_000)
    assert decoded == {"k": "v"}
    assert "10000003 bytes" in problem
    decoded, problems = decode_with_problems("é" * 10_000 + ",k=v")
    assert (decoded, len(problems)) == ({}, 1)


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
