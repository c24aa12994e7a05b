"""With hooks on, what user code and asyncio observe is what it is with hooks off."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from async_hooks import create_hook, execution_async_id

from .conftest import Recorder, RunAsync


def callback(*args: object) -> None:
    return None


def asyncio_private(obj: object, name: str) -> Any:
    """An attribute asyncio keeps for itself, read as its own tests read it."""
    return getattr(obj, name)


async def coroutine_function() -> None:
    return None


@pytest.fixture
def no_cyclic_collector() -> Iterator[None]:
    """Every hook on (no-ops that keep nothing), and no cyclic collector: refcounts alone."""
    hook = create_hook(
        init=lambda async_id, type, trigger_async_id, resource: None,
        before=lambda async_id: None,
        after=lambda async_id: None,
        destroy=lambda async_id: None,
        promise_resolve=lambda async_id: None,
    ).enable()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        hook.disable()


def test_a_stdlib_handle_keeps_the_users_callback_and_repr(recorder: Recorder) -> None:
    loop = asyncio.new_event_loop()
    try:
        handle = loop.call_soon(callback, 1, 2)
        timer = loop.call_later(10, callback)
        assert asyncio_private(handle, "_callback") is callback
        assert asyncio_private(handle, "_args") == (1, 2)
        assert asyncio_private(timer, "_callback") is callback
        # A handle built by hand (not by a loop: not tracked) has the same repr.
        assert repr(handle) == repr(asyncio.Handle(callback, (1, 2), loop))
        assert recorder.inits[recorder.id_of(handle)].type == "Handle"
        timer.cancel()
        assert recorder.of(recorder.id_of(timer)) == ["init", "destroy"]
    finally:
        loop.close()


def test_debug_mode_checks_and_source_tracebacks_are_asyncios(recorder: Recorder) -> None:
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
            loop.call_soon(coroutine_function)
        line = sys._getframe().f_lineno + 1
        handle = loop.call_soon(callback)
        last = asyncio_private(handle, "_source_traceback")[-1]
        assert (last.filename, last.lineno) == (__file__, line)
        assert f"created at {__file__}:{line}" in repr(handle)
    finally:
        loop.close()


def test_a_task_runs_the_users_coroutine_and_a_future_is_asyncios(
    run_async: RunAsync, recorder: Recorder
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        coro = coroutine_function()
        task = loop.create_task(coro)
        assert task.get_coro() is coro
        await task
        future = loop.create_future()
        assert type(future) is type(asyncio.Future(loop=loop))
        future.cancel()

    run_async(main)
    assert "Task" in recorder.types()
    assert "Future" in recorder.types()


def test_a_task_built_directly_is_tracked_from_its_first_step(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: dict[str, Any] = {}

    async def child() -> None:
        seen["inside"] = execution_async_id()

    async def main() -> None:
        task = asyncio.Task(child())
        seen["task"] = task
        await task

    run_async(main)
    task_id = recorder.id_of(seen["task"])
    assert seen["inside"] == task_id
    assert recorder.of(task_id) == ["init", "before", "promise_resolve", "after", "destroy"]


@pytest.mark.usefixtures("no_cyclic_collector")
def test_a_failed_task_and_its_exception_go_with_their_last_reference(
    run_async: RunAsync,
) -> None:
    refs: list[weakref.ref[Any]] = []

    class Failure(Exception):
        pass

    async def fail() -> None:
        raise Failure

    async def main() -> None:
        task = asyncio.create_task(fail())
        try:
            await task
        except Failure as error:
            refs.extend([weakref.ref(task), weakref.ref(error)])
        del task

    run_async(main)
    assert [ref() for ref in refs] == [None, None]


@pytest.mark.usefixtures("no_cyclic_collector")
def test_a_cancelled_task_goes_with_its_last_reference(run_async: RunAsync) -> None:
    refs: list[weakref.ref[Any]] = []

    async def main() -> None:
        task = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            refs.append(weakref.ref(task))
        del task

    run_async(main)
    assert [ref() for ref in refs] == [None]
