"""Scenarios of Node's async_hooks documentation, re-expressed in asyncio."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from async_hooks import create_hook, execution_async_id, execution_async_resource

from .conftest import Recorder, RunAsync, check_invariants


def test_state_propagates_through_execution_async_resource(run_async: RunAsync) -> None:
    # Node's example: init copies the creator's state onto the new resource,
    # so every request's timers and tasks find their request's state. Tasks
    # take no attributes in Python: a weak dictionary holds the state.
    state: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def init(async_id: int, type: str, trigger: int, resource: object) -> None:
        creator = execution_async_resource()
        if creator in state:
            state[resource] = state[creator]

    seen: dict[str, str | None] = {}

    async def request(name: str) -> None:
        state[asyncio.current_task()] = name
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def timer_fired() -> None:
            seen[name] = state.get(execution_async_resource())
            done.set_result(None)

        loop.call_later(0.001, lambda: loop.call_soon(timer_fired))
        await done

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(request("first"))
            group.create_task(request("second"))

    hook = create_hook(init=init).enable()
    try:
        run_async(main)
    finally:
        hook.disable()
    assert seen == {"first": "first", "second": "second"}


def test_promise_awaited_by_a_task_with_a_timer(run_async: RunAsync, recorder: Recorder) -> None:
    # Node: `await new Promise(r => setTimeout(r, 1))` inside an async function.
    ids: dict[str, int] = {}

    async def sleeper() -> None:
        loop = asyncio.get_running_loop()
        ids["task"] = execution_async_id()
        future = loop.create_future()
        timer = loop.call_later(0.001, future.set_result, None)
        ids["future"] = recorder.id_of(future)
        ids["timer"] = recorder.id_of(timer)
        await future

    async def main() -> None:
        await asyncio.create_task(sleeper())

    run_async(main)
    order = [
        (event.name, event.async_id)
        for event in recorder.events
        if event.async_id in ids.values()
        and not (event.async_id == ids["task"] and event.name == "init")
    ]
    task, future, timer = ids["task"], ids["future"], ids["timer"]
    assert order == [
        ("before", task),
        ("init", future),
        ("init", timer),
        ("after", task),
        ("before", timer),
        ("promise_resolve", future),
        ("destroy", future),
        ("after", timer),
        ("destroy", timer),
        ("before", task),
        ("promise_resolve", task),
        ("after", task),
        ("destroy", task),
    ]
    assert recorder.inits[future].trigger_async_id == task
    assert recorder.inits[timer].trigger_async_id == task
    check_invariants(recorder.events)


def test_immediates_in_order_with_their_own_ids(run_async: RunAsync, recorder: Recorder) -> None:
    # Node: setImmediate three times; each runs in its own scope, in order.
    ran: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handles = [loop.call_soon(lambda: ran.append(execution_async_id())) for _ in range(3)]
        await asyncio.sleep(0)
        assert ran == [recorder.id_of(handle) for handle in handles]

    run_async(main)
    assert len(ran) == 3
