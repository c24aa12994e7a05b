"""AsyncLocalStorage and AsyncResource in trio tasks and nurseries.

trio copies the spawner's context into every task, so stores follow trio
tasks without any tracking. Each test runs untracked and with a hook enabled
(tracking writes an execution frame into each task's context, which must not
disturb the stores).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from async_hooks import AsyncLocalStorage, AsyncResource, create_hook, execution_async_id


@pytest.fixture(params=["untracked", "tracked"], autouse=True)
def tracking(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param == "untracked":
        yield
        return
    hook = create_hook(
        init=lambda *args: None,
        before=lambda async_id: None,
        after=lambda async_id: None,
        destroy=lambda async_id: None,
    ).enable()
    try:
        yield
    finally:
        hook.disable()


def test_run_reaches_tasks_spawned_inside_it() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")
    seen: dict[str, str | None] = {}

    async def child(name: str) -> None:
        await trio.sleep(0)
        seen[name] = als.get_store()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            als.run("inside", nursery.start_soon, child, "spawned-inside")
            nursery.start_soon(child, "spawned-outside")
        seen["main"] = als.get_store()

    trio.run(main)

    assert seen == {"spawned-inside": "inside", "spawned-outside": None, "main": None}


def test_awaited_run_keeps_the_store_across_checkpoints_and_into_children() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    seen: list[tuple[str, int | None]] = []

    async def grandchild() -> None:
        await trio.sleep(0)
        seen.append(("grandchild", als.get_store()))

    async def handler(request_id: int) -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(grandchild)
            await trio.sleep(0)
            seen.append(("handler", als.get_store()))
        return request_id * 10

    async def main() -> None:
        result = await als.run(7, handler, 7)
        seen.append(("main", als.get_store()))
        assert result == 70

    trio.run(main)

    assert sorted(seen) == [("grandchild", 7), ("handler", 7), ("main", None)]


def test_sibling_tasks_are_isolated() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    seen: dict[int, list[int | None]] = {}

    async def worker(n: int) -> None:
        als.enter_with(n)
        seen[n] = []
        for _ in range(5):
            await trio.sleep(0)
            seen[n].append(als.get_store())

    async def main() -> None:
        als.enter_with(-1)
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(worker, n)
        assert als.get_store() == -1

    trio.run(main)

    assert seen == {n: [n] * 5 for n in range(20)}


def test_exit_hides_the_store_inside_a_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")
    seen: list[str | None] = []

    async def main() -> None:
        als.enter_with("outer")
        seen.append(als.exit(als.get_store))
        seen.append(await als.exit(checkpoint_then_read, als))
        seen.append(als.get_store())

    trio.run(main)

    assert seen == [None, None, "outer"]


async def checkpoint_then_read(als: AsyncLocalStorage[str]) -> str | None:
    await trio.sleep(0)
    return als.get_store()


def test_bind_and_snapshot_carry_a_task_context_into_another_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []

    async def producer(send: trio.MemorySendChannel[object]) -> None:
        als.enter_with("producer")
        await send.send(AsyncLocalStorage.bind(als.get_store))
        await send.send(AsyncLocalStorage.snapshot())

    async def consumer(receive: trio.MemoryReceiveChannel[object]) -> None:
        als.enter_with("consumer")
        bound = await receive.receive()
        runner = await receive.receive()
        assert callable(bound)
        seen.append(bound())
        seen.append(runner(als.get_store))  # type: ignore[operator]
        # A change made inside one call stays there.
        runner(als.enter_with, "changed")  # type: ignore[operator]
        seen.append(runner(als.get_store))  # type: ignore[operator]
        seen.append(als.get_store())

    async def main() -> None:
        send, receive = trio.open_memory_channel[object](2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer, receive)
            nursery.start_soon(producer, send)

    trio.run(main)

    assert seen == ["producer", "producer", "producer", "consumer"]


def test_async_resource_scope_in_another_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resources: list[AsyncResource] = []
    seen: list[tuple[str | None, int]] = []

    async def creator() -> None:
        with als.with_scope("creator"):
            resources.append(AsyncResource("Connection"))

    async def user() -> None:
        als.enter_with("user")
        (resource,) = resources

        def read() -> tuple[str | None, int]:
            return als.get_store(), execution_async_id()

        async def read_after_checkpoint() -> tuple[str | None, int]:
            await trio.sleep(0)
            return read()

        seen.append(resource.run_in_async_scope(read))
        seen.append(await resource.run_in_async_scope(read_after_checkpoint))
        seen.append((als.get_store(), -1))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(creator)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(user)

    trio.run(main)

    resource_id = resources[0].async_id()
    assert seen == [("creator", resource_id), ("creator", resource_id), ("user", -1)]


def test_worker_threads_see_the_store_of_the_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> str | None:
        with als.with_scope("request"):
            return await trio.to_thread.run_sync(als.get_store)

    assert trio.run(main) == "request"
