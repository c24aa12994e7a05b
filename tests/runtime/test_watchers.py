"""Readers, writers and signal handlers: one resource from add_* to remove_*, a step per run."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, execution_async_id, trigger_async_id
from async_hooks.lowlevel import flush_pending_destroys

from .conftest import Recorder, RunAsync, check_invariants

request: AsyncLocalStorage[str] = AsyncLocalStorage()


def _ids_of(recorder: Recorder, type_name: str) -> list[int]:
    return [event.async_id for event in recorder.events if event.type == type_name]


async def _settle() -> None:
    # A dropped registration's destroy is queued by the collector's callback
    # and delivered at the next loop iteration.
    for _ in range(3):
        await asyncio.sleep(0)
    flush_pending_destroys()


def test_a_reader_is_one_resource_with_a_step_per_run(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: list[tuple[int, int, str | None, bytes]] = []
    creator: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        two = asyncio.Event()

        def on_readable(sock: socket.socket) -> None:
            seen.append(
                (execution_async_id(), trigger_async_id(), request.get_store(), sock.recv(1))
            )
            if len(seen) == 2:
                two.set()

        creator.append(execution_async_id())
        request.run("req-reader", loop.add_reader, left, on_readable, left)
        right.send(b"a")
        await asyncio.sleep(0.05)
        right.send(b"b")
        await two.wait()
        loop.remove_reader(left)
        await _settle()
        left.close()
        right.close()

    run_async(main)
    (reader,) = _ids_of(recorder, "Reader")
    assert recorder.inits[reader].trigger_async_id == creator[0]
    assert recorder.of(reader) == ["init", "before", "after", "before", "after", "destroy"]
    assert seen == [
        (reader, creator[0], "req-reader", b"a"),
        (reader, creator[0], "req-reader", b"b"),
    ]
    check_invariants(recorder.events)


def test_a_writer_removed_in_its_own_callback_ends_after_that_run(
    run_async: RunAsync, recorder: Recorder
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        done = asyncio.Event()

        def on_writable() -> None:
            loop.remove_writer(left)
            done.set()

        loop.add_writer(left, on_writable)
        await done.wait()
        await _settle()
        left.close()
        right.close()

    run_async(main)
    (writer,) = _ids_of(recorder, "Writer")
    # Removed inside its own run: the destroy waits for that run's after.
    assert recorder.of(writer) == ["init", "before", "after", "destroy"]
    check_invariants(recorder.events)


def test_adding_a_reader_again_for_the_same_fd_ends_the_first(
    run_async: RunAsync, recorder: Recorder
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        loop.add_reader(left, print)
        loop.add_reader(left, print)
        await _settle()
        loop.remove_reader(left)
        await _settle()
        left.close()
        right.close()

    run_async(main)
    first, second = _ids_of(recorder, "Reader")
    assert recorder.of(first) == ["init", "destroy"]
    assert recorder.of(second) == ["init", "destroy"]
    destroys = [event.async_id for event in recorder.events if event.name == "destroy"]
    assert destroys.index(first) < destroys.index(second)


def test_a_signal_handler_runs_as_its_resource_until_removed(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: list[tuple[int, str | None, tuple[Any, ...]]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def on_signal(*args: Any) -> None:
            seen.append((execution_async_id(), request.get_store(), args))
            arrived.set()

        request.run("req-signal", loop.add_signal_handler, signal.SIGUSR1, on_signal, "arg")
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(arrived.wait(), 5)
        loop.remove_signal_handler(signal.SIGUSR1)
        gc.collect()
        await _settle()

    run_async(main)
    (handler,) = _ids_of(recorder, "SignalHandler")
    assert seen == [(handler, "req-signal", ("arg",))]
    assert recorder.of(handler) == ["init", "before", "after", "destroy"]
    check_invariants(recorder.events)


def test_a_handle_that_cancels_itself_is_destroyed_after_its_run(
    run_async: RunAsync, recorder: Recorder
) -> None:
    handles: list[asyncio.Handle] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handles.append(loop.call_soon(lambda: handles[0].cancel()))
        await _settle()

    run_async(main)
    assert recorder.of(recorder.id_of(handles[0])) == ["init", "before", "after", "destroy"]


@pytest.mark.parametrize(
    "schedule",
    [
        lambda loop: loop.call_soon(print),
        lambda loop: loop.call_later(60, print),
        lambda loop: loop.call_at(loop.time() + 60, print),
    ],
    ids=["call_soon", "call_later", "call_at"],
)
def test_a_cancelled_handle_is_destroyed_at_cancel_while_still_held(
    run_async: RunAsync, recorder: Recorder, schedule: Callable[[Any], asyncio.Handle]
) -> None:
    held: list[asyncio.Handle] = []

    async def main() -> None:
        handle = schedule(asyncio.get_running_loop())
        held.append(handle)
        handle.cancel()
        await _settle()

    run_async(main)
    handle_id = recorder.id_of(held[0])
    assert held  # the user still holds the handle: its destroy came from the cancel
    assert recorder.of(handle_id) == ["init", "destroy"]


def test_the_stdlib_loop_keeps_the_users_callback_on_a_reader_s_handle(recorder: Recorder) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        loop.add_reader(left, print, "x")
        handle = loop._selector.get_key(left).data[0]  # type: ignore[attr-defined]
        assert handle._callback is print
        assert handle._args == ("x",)
        loop.remove_reader(left)
        left.close()
        right.close()

    asyncio.run(main())


def test_a_closed_loop_still_refuses_and_reports_as_asyncio_does(
    loop_name: str, recorder: Recorder
) -> None:
    from ..conftest import LOOP_FACTORIES

    loop = LOOP_FACTORIES[loop_name]()
    left, right = socket.socketpair()
    try:
        loop.add_reader(left, print)
        loop.close()
        assert not loop.remove_reader(left)
        with pytest.raises(RuntimeError):
            loop.add_reader(left, print)
        with pytest.raises(RuntimeError):
            loop.add_writer(left, print)
    finally:
        left.close()
        right.close()
