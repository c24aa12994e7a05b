"""blinker: receivers run in the sender's context by default; connect_in_context
runs them in the connecting code's context or in a copy of the sender's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from blinker import Signal

from async_hooks import AsyncLocalStorage, create_hook, execution_async_id
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError
from async_hooks.integrations.blinker import RECEIVER_RESOURCE_TYPE, connect_in_context
from tests.conftest import RunAsync

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")


def test_blinker_default_runs_receivers_in_the_senders_context_and_leaks() -> None:
    signal = Signal()
    seen: list[str | None] = []

    def receiver(sender: object) -> None:
        seen.append(request.get_store())
        request.enter_with("entered by the receiver")

    request.run("connecting", signal.connect, receiver)

    def sending_code() -> str | None:
        signal.send("sender")
        return request.get_store()

    assert request.run("sender", sending_code) == "entered by the receiver"
    assert seen == ["sender"]


@pytest.mark.parametrize(("choice", "expected"), [("connect", "connecting"), ("send", "sender")])
def test_blinker_connect_in_context(choice: Any, expected: str) -> None:
    signal = Signal()
    seen: list[str | None] = []

    def receiver(sender: object, **kwargs: object) -> str:
        seen.append(request.get_store())
        request.enter_with("entered by the receiver")
        return f"{sender}:{kwargs['n']}"

    bound = request.run("connecting", connect_in_context, signal, receiver, context=choice)

    def sending_code(n: int) -> tuple[object, str | None]:
        results = signal.send("sender", n=n)
        return results[0][1], request.get_store()

    assert request.run("sender", sending_code, 1) == ("sender:1", "sender")
    assert request.run("sender", sending_code, 2) == ("sender:2", "sender")
    assert seen == [expected, expected]
    assert bound.__wrapped__ is receiver  # type: ignore[attr-defined]
    signal.disconnect(bound)
    assert signal.send("sender", n=3) == []


def test_blinker_bound_receiver_is_an_async_resource() -> None:
    signal = Signal()
    ids: list[int] = []
    created: list[tuple[str, int]] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == RECEIVER_RESOURCE_TYPE:
            created.append((type, async_id))

    hook = create_hook(init=init).enable()
    try:
        connect_in_context(signal, lambda sender: ids.append(execution_async_id()))
    finally:
        hook.disable()
    signal.send(None)
    assert len(created) == 1
    assert ids == [created[0][1]]


def test_blinker_sender_filter_is_kept() -> None:
    signal = Signal()
    seen: list[object] = []
    connect_in_context(signal, seen.append, sender="only-this")
    signal.send("another")
    signal.send("only-this")
    assert seen == ["only-this"]


@pytest.mark.parametrize(("choice", "expected"), [("connect", "connecting"), ("send", "sender")])
def test_blinker_async_receivers_with_send_async(
    run_async: RunAsync[None], choice: Any, expected: str
) -> None:
    async def main() -> None:
        signal = Signal()
        seen: list[str | None] = []

        async def receiver(sender: object) -> str:
            await asyncio.sleep(0)
            seen.append(request.get_store())
            request.enter_with("entered by the receiver")
            return "ok"

        request.run("connecting", connect_in_context, signal, receiver, context=choice)
        request.enter_with("sender")
        results = await signal.send_async("s")
        assert [result for _, result in results] == ["ok"]
        assert request.get_store() == "sender"
        assert seen == [expected]

    run_async(main)


def test_blinker_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidArgTypeError, match='"signal" argument must be a blinker Signal'):
        connect_in_context("signal", print)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"receiver" argument must be callable'):
        connect_in_context(Signal(), "receiver")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgValueError, match='must be "connect" or "send"'):
        connect_in_context(Signal(), print, context="emit")  # type: ignore[arg-type]
