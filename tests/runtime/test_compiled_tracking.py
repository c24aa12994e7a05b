"""The compiled tracking of the stdlib loop: in place where the accelerator runs, and unseen.

Its behaviour is the rest of the suite's, which runs on both paths; what is
checked here is only what differs by construction: which objects replace
the loop's methods, and that they still read as those methods.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import pytest

from async_hooks import create_hook, lowlevel

accelerated = pytest.mark.skipif(not lowlevel.accelerated(), reason="the fallback runs")


@pytest.fixture
def hook_on() -> object:
    hook = create_hook(init=lambda *args: None, destroy=lambda async_id: None).enable()
    yield hook
    hook.disable()


@accelerated
def test_the_stdlib_loop_runs_the_compiled_replacements(hook_on: object) -> None:
    from async_hooks import _speedups

    loop_methods = vars(asyncio.BaseEventLoop)
    assert type(loop_methods["create_task"]) is _speedups.TrackedCreateTask
    assert type(loop_methods["call_soon"]) is _speedups.TrackedCallSoon
    assert type(vars(asyncio.Handle)["_run"]) is _speedups.TrackedHandleRun


@accelerated
def test_a_compiled_replacement_reads_as_the_method_it_replaced(hook_on: object) -> None:
    loop = asyncio.new_event_loop()
    try:
        for name in ("create_task", "call_soon"):
            method = getattr(loop, name)
            assert method.__self__ is loop
            assert method.__name__ == name
            assert method.__qualname__ == f"BaseEventLoop.{name}"
            assert method.__func__.__wrapped__.__qualname__ == f"BaseEventLoop.{name}"
    finally:
        loop.close()


def test_disabling_puts_back_the_identical_methods() -> None:
    before = dict(vars(asyncio.BaseEventLoop)), dict(vars(asyncio.Handle))
    create_hook(init=lambda *args: None).enable().disable()
    assert (dict(vars(asyncio.BaseEventLoop)), dict(vars(asyncio.Handle))) == before


def test_a_finished_task_is_collected_with_no_callback_left_to_run() -> None:
    destroyed: list[int] = []
    hook = create_hook(destroy=destroyed.append).enable()

    async def main() -> weakref.ref[asyncio.Task[None]]:
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        return weakref.ref(task)

    try:
        gc.disable()
        ref = asyncio.run(main())
        # Destroyed at its end; freed by reference counting, and its record's
        # reference to it has no callback to queue a second destroy.
        assert ref() is None
        count = len(destroyed)
        gc.collect()
        assert len(destroyed) == count
        assert len(set(destroyed)) == len(destroyed)
    finally:
        gc.enable()
        hook.disable()


@accelerated
def test_a_task_and_a_handle_with_contexts_of_their_own_are_not_filed_by_id() -> None:
    from async_hooks._runtime import _asyncio

    ran_as: list[int] = []
    hook = create_hook(before=ran_as.append).enable()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(asyncio.sleep(0))
        handle = loop.call_soon(lambda: None)
        # Found from the contexts they run in, which hold their records.
        assert id(task) not in _asyncio._tasks
        assert id(handle) not in _asyncio._handles
        await task

    try:
        asyncio.run(main())
    finally:
        hook.disable()
    assert len(set(ran_as)) >= 3  # the main task, the task and the handle


def test_a_handle_cancelled_before_it_runs_is_destroyed_at_the_cancel() -> None:
    inits: list[tuple[int, str]] = []
    destroyed: list[int] = []
    hook = create_hook(
        init=lambda async_id, type, trigger, resource: inits.append((async_id, type)),
        destroy=destroyed.append,
    ).enable()

    async def main() -> None:
        handle = asyncio.get_running_loop().call_soon(lambda: None)
        [handle_id] = [async_id for async_id, type in inits if type == "Handle"]
        handle.cancel()
        assert destroyed.count(handle_id) == 1
        await asyncio.sleep(0)
        assert destroyed.count(handle_id) == 1

    try:
        asyncio.run(main())
    finally:
        hook.disable()


@pytest.mark.skipif(not hasattr(asyncio.Task, "get_context"), reason="Task.get_context is 3.12+")
def test_a_handle_run_in_a_tasks_own_context_is_a_resource_of_its_own() -> None:
    from async_hooks import execution_async_id

    inits: dict[int, str] = {}
    hook = create_hook(
        init=lambda async_id, type, trigger, resource: inits.__setitem__(async_id, type)
    ).enable()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        ran: asyncio.Future[int] = loop.create_future()
        if sys.version_info < (3, 12):  # the mark skips it; for the type checker
            return
        loop.call_soon(lambda: ran.set_result(execution_async_id()), context=task.get_context())
        async_id = await ran
        assert inits[async_id] == "Handle"

    try:
        asyncio.run(main())
    finally:
        hook.disable()
