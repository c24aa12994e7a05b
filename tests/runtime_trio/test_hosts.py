"""trio runs hosted elsewhere: guest mode on an asyncio loop, and runs in threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import outcome
import trio

from async_hooks import AsyncLocalStorage, execution_async_id, trigger_async_id

from .conftest import TrioEvents

# The shape of tests/conftest.py's run_async fixture.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


def test_guest_run_on_an_asyncio_loop_is_tracked(
    run_async: RunAsync, trio_events: TrioEvents
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    ids: dict[str, tuple[int, int]] = {}

    async def child() -> str | None:
        ids["child"] = (execution_async_id(), trigger_async_id())
        await trio.sleep(0)
        return als.get_store()

    async def trio_main() -> str | None:
        ids["main"] = (execution_async_id(), trigger_async_id())
        stores: list[str | None] = []

        async def collect() -> None:
            stores.append(await child())

        async with trio.open_nursery() as nursery:
            als.run("guest", nursery.start_soon, collect)
        return stores[0]

    async def host() -> str | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[str | None]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
            # asyncio and uvloop both own the signal wakeup fd of the main thread.
            host_uses_signal_set_wakeup_fd=True,
        )
        return (await done).unwrap()

    assert run_async(host) == "guest"
    assert ids["child"][1] == ids["main"][0]
    assert trio_events.events_of(ids["child"][0])[-1] == "destroy"


def test_concurrent_runs_in_threads_are_tracked_apart(trio_events: TrioEvents) -> None:
    seen: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def run_in_thread(name: str) -> None:
        async def main() -> None:
            seen[name] = [execution_async_id()]
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(child, name)

        async def child(run_name: str) -> None:
            await trio.sleep(0)
            seen[run_name].append(execution_async_id())

        start.wait(timeout=10)
        trio.run(main)

    threads = [threading.Thread(target=run_in_thread, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    ids = seen["a"] + seen["b"]
    assert len(ids) == len(set(ids)) == 12
    for async_id in ids:
        events = trio_events.events_of(async_id)
        assert events[0] == "init"
        assert events[-1] == "destroy"
        assert events.count("destroy") == 1


def test_system_tasks_are_triggered_by_the_task_that_spawned_them(
    trio_events: TrioEvents,
) -> None:
    ids: dict[str, tuple[int, int]] = {}

    async def system_child(finished: trio.Event) -> None:
        ids["system"] = (execution_async_id(), trigger_async_id())
        finished.set()

    async def main() -> None:
        ids["main"] = (execution_async_id(), trigger_async_id())
        finished = trio.Event()
        trio.lowlevel.spawn_system_task(system_child, finished)
        await finished.wait()

    trio.run(main)

    assert ids["system"][1] == ids["main"][0]
    assert ids["system"][0] in trio_events.inits
