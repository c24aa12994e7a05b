"""The shared request-id store, its generator and its validation."""

from __future__ import annotations

import uuid

import pytest

from async_hooks.integrations.request_id import (
    DEFAULT_HEADER,
    is_valid_request_id,
    new_request_id,
    request_id,
)
from async_hooks.propagation import Crossing


def test_new_ids_are_random_uuid4_in_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == value
        assert is_valid_request_id(value)


@pytest.mark.parametrize(
    "value", ["a", "A-Z_a.z-0_9", "x" * 128, "4bf92f3577b34da6a3ce929d0e0e4736"]
)
def test_valid_ids(value: str) -> None:
    assert is_valid_request_id(value)


@pytest.mark.parametrize(
    "value", ["", "x" * 129, "has space", "a\nb", "a\r\n", "<b>", "é", "a/b", "a;b", "a,b"]
)
def test_invalid_ids(value: str) -> None:
    assert not is_valid_request_id(value)


def test_non_text_is_never_valid() -> None:
    assert not is_valid_request_id(b"abc")  # type: ignore[arg-type]
    assert not is_valid_request_id(None)  # type: ignore[arg-type]


def test_the_store_is_declared_to_cross_everything() -> None:
    assert request_id.name == "request_id"
    assert request_id.crosses == Crossing.ALL
    assert request_id.serializer is not None
    assert request_id.serializer.loads(request_id.serializer.dumps("abc")) == "abc"
    assert DEFAULT_HEADER == "X-Request-ID"
