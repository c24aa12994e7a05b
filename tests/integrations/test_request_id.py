"""The shared request-id store, its generator and its validation."""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.request_id import (
    DEFAULT_HEADER,
    is_valid_request_id,
    new_request_id,
    request_id,
)
from async_hooks.propagation import JSON


def test_new_ids_are_random_uuid4_in_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == value
        assert is_valid_request_id(value)


def test_ids_made_on_several_threads_never_repeat() -> None:
    def make(count: int) -> list[str]:
        return [new_request_id() for _ in range(count)]

    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(make, [5000] * 4))
    ids = [value for batch in batches for value in batch]
    assert len(set(ids)) == len(ids) == 20000


@pytest.mark.skipif(sys.platform == "win32", reason="fork() is POSIX")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_request_id()  # the parent now holds a batch of random bytes
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        # Threads left by other tests make 3.12+ warn about fork(); the child
        # only writes one id and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    child_id = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert is_valid_request_id(child_id)
    assert child_id != new_request_id()


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


def test_a_users_store_named_request_id_does_not_clash() -> None:
    mine = AsyncLocalStorage[str](name="request_id", crosses=Crossing.ALL, serializer=JSON)
    with mine.with_scope("user's"), request_id.with_scope("ours"):
        assert (mine.get_store(), request_id.get_store()) == ("user's", "ours")


def test_the_store_is_declared_to_cross_everything() -> None:
    assert request_id.name == "async_hooks.request_id"
    assert request_id.crosses == Crossing.ALL
    assert request_id.serializer is not None
    assert request_id.serializer.loads(request_id.serializer.dumps("abc")) == "abc"
    assert DEFAULT_HEADER == "X-Request-ID"
