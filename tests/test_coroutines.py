"""The coroutine rule: a coroutine returned through run, exit, a resource
scope, a bound function or a snapshot runner runs every step in that context."""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import pytest
import trio

from async_hooks import (
    AsyncLocalStorage,
    AsyncResource,
    create_hook,
    execution_async_id,
    isolated,
)
from async_hooks._coroutines import ContextCoroutine, is_coroutine

# The signature of the `run_async` fixture of conftest.py.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


def make_runners(
    als: AsyncLocalStorage[str],
) -> dict[str, Callable[[Callable[[], Coroutine[Any, Any, Any]]], Coroutine[Any, Any, Any]]]:
    """Each API that runs a function in a context, called with 'inside' as the store."""
    resource = als.run("inside", AsyncResource, "CoroutineScope")
    snapshot = als.run("inside", AsyncLocalStorage.snapshot)
    return {
        "run": lambda fn: als.run("inside", fn),
        "run_in_async_scope": lambda fn: resource.run_in_async_scope(fn),
        "resource.bind": lambda fn: resource.bind(fn)(),
        "AsyncLocalStorage.bind": lambda fn: als.run("inside", AsyncLocalStorage.bind, fn)(),
        "snapshot": lambda fn: snapshot(fn),
    }


RUNNER_NAMES = sorted(make_runners(AsyncLocalStorage()))


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """Suspend once, without an event loop: lets a test drive a coroutine by hand."""
    yield


@pytest.mark.parametrize("runner", RUNNER_NAMES)
def test_every_step_and_every_task_created_keeps_the_context(
    run_async: RunAsync, runner: str
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body() -> list[str | None]:
        seen = [als.get_store()]
        await asyncio.sleep(0)
        seen.append(als.get_store())
        await asyncio.sleep(0.001)
        seen.append(als.get_store())
        child = asyncio.create_task(asyncio.sleep(0, result=None))
        await child
        seen.append(await asyncio.create_task(read_after_yield(als)))
        loop = asyncio.get_running_loop()
        timer: asyncio.Future[str | None] = loop.create_future()
        loop.call_later(0.001, lambda: timer.set_result(als.get_store()))
        seen.append(await timer)
        return seen

    async def main() -> tuple[list[str | None], str | None]:
        als.enter_with("caller")
        result = await make_runners(als)[runner](body)
        return result, als.get_store()

    assert run_async(main) == (["inside"] * 5, "caller")


async def read_after_yield(als: AsyncLocalStorage[str]) -> str | None:
    await asyncio.sleep(0)
    return als.get_store()


@pytest.mark.parametrize("runner", RUNNER_NAMES)
def test_enter_with_inside_does_not_reach_the_awaiting_code(
    run_async: RunAsync, runner: str
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body() -> str | None:
        als.enter_with("entered inside")
        await asyncio.sleep(0)
        return als.get_store()

    async def main() -> tuple[str | None, str | None]:
        als.enter_with("caller")
        return await make_runners(als)[runner](body), als.get_store()

    assert run_async(main) == ("entered inside", "caller")


@pytest.mark.parametrize("runner", RUNNER_NAMES)
def test_an_exception_propagates_unchanged_and_the_context_is_restored(
    run_async: RunAsync, runner: str
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    error = LookupError("from the coroutine")

    async def body() -> None:
        await asyncio.sleep(0)
        raise error

    async def main() -> tuple[BaseException, str | None]:
        als.enter_with("caller")
        try:
            await make_runners(als)[runner](body)
        except LookupError as caught:
            return caught, als.get_store()
        raise AssertionError("not raised")

    caught, after = run_async(main)
    assert caught is error
    assert after == "caller"


def test_a_coroutine_cancelled_while_waiting_runs_its_finally_in_context(
    run_async: RunAsync,
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    in_finally: list[str | None] = []

    async def body() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            in_finally.append(als.get_store())

    async def main() -> bool:
        task = asyncio.create_task(als.run("inside", body))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert run_async(main) is True
    assert in_finally == ["inside"]


def test_wait_for_timeout_cancels_through_the_wrapper(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    in_finally: list[str | None] = []

    async def body() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            in_finally.append(als.get_store())

    async def main() -> str:
        try:
            await asyncio.wait_for(als.run("inside", body), timeout=0.01)
        except TimeoutError:
            return "timed out"
        return "finished"

    assert run_async(main) == "timed out"
    assert in_finally == ["inside"]


def test_close_runs_the_coroutine_s_finally_in_its_context() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    in_finally: list[str | None] = []

    async def body() -> None:
        try:
            await suspend()
        finally:
            in_finally.append(als.get_store())

    wrapped = als.run("inside", body)
    wrapped.send(None)  # runs up to the first suspension
    wrapped.close()
    assert in_finally == ["inside"]


def test_the_wrapper_is_a_coroutine_for_asyncio_and_shows_the_user_s_coroutine() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler() -> int:
        return 7

    wrapped = als.run("inside", handler)
    assert isinstance(wrapped, ContextCoroutine)
    assert asyncio.iscoroutine(wrapped)
    assert isinstance(wrapped, Coroutine)
    assert is_coroutine(wrapped)
    assert wrapped.__name__ == "handler"
    assert wrapped.__qualname__.endswith("handler")
    assert "handler" in repr(wrapped)
    with pytest.raises(StopIteration) as stopped:
        wrapped.send(None)
    assert stopped.value.value == 7


def test_throw_accepts_the_legacy_three_argument_form() -> None:
    # `yield from` may still hand throw() a (type, value, traceback) triple.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    caught: list[tuple[tuple[object, ...], str | None]] = []

    async def body() -> str:
        try:
            await suspend()
        except KeyError as error:
            caught.append((error.args, als.get_store()))
        return "recovered"

    throw_forms: list[tuple[Any, ...]] = [
        (KeyError,),
        (KeyError("k"),),
        (KeyError, KeyError("k")),
        (KeyError, "k"),
        (KeyError, "k", None),
    ]
    for throw_args in throw_forms:
        wrapped: Any = als.run("inside", body)
        wrapped.send(None)
        with pytest.raises(StopIteration) as stopped:
            wrapped.throw(*throw_args)
        assert stopped.value.value == "recovered"
    assert caught == [((), "inside")] + [(("k",), "inside")] * 4


def test_what_is_not_a_coroutine_is_returned_as_it_is() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def generator() -> Iterator[str | None]:
        yield als.get_store()

    gen = als.run("inside", generator)
    assert inspect.isgenerator(gen)
    # A generator is not a coroutine: it runs where it is consumed.
    assert list(gen) == [None]
    marker = object()
    assert als.run("inside", lambda: marker) is marker
    assert als.run("inside", lambda: None) is None


class HandMadeCoroutine(Coroutine[Any, Any, str | None]):
    """A coroutine that is not an `async def` one (as Cython or a library may make)."""

    def __init__(self, als: AsyncLocalStorage[str]) -> None:
        self._als = als
        self._steps = 0

    def send(self, value: Any) -> Any:
        self._steps += 1
        if self._steps == 1:
            return None  # a bare yield: asyncio reschedules the task
        result: str | None = self._als.get_store()
        raise StopIteration(result)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise typ if val is None else val

    def close(self) -> None:
        pass

    def __await__(self) -> Generator[Any, None, str | None]:
        return self  # type: ignore[return-value]

    def __next__(self) -> Any:
        return self.send(None)


def test_a_foreign_coroutine_type_is_wrapped_too(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> str | None:
        wrapped = als.run("inside", HandMadeCoroutine, als)
        assert isinstance(wrapped, ContextCoroutine)
        result: str | None = await wrapped
        return result

    assert run_async(main) == "inside"


def test_scope_events_surround_each_step_of_a_resource_coroutine(run_async: RunAsync) -> None:
    events: list[tuple[str, int]] = []
    ids: set[int] = set()

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestSteps":
            ids.add(async_id)

    hook = create_hook(
        init=init,
        before=lambda async_id: (
            events.append(("before", execution_async_id())) if async_id in ids else None
        ),
        after=lambda async_id: events.append(("after", async_id)) if async_id in ids else None,
    )

    async def body() -> None:
        events.append(("step", execution_async_id()))
        await asyncio.sleep(0)
        events.append(("step", execution_async_id()))

    async def main() -> int:
        resource = AsyncResource("TestSteps")
        await resource.run_in_async_scope(body)
        return resource.async_id()

    hook.enable()
    try:
        async_id = run_async(main)
    finally:
        hook.disable()
    # The call itself, then one before/after pair around each of the two steps.
    assert events == [
        ("before", async_id),
        ("after", async_id),
        ("before", async_id),
        ("step", async_id),
        ("after", async_id),
        ("before", async_id),
        ("step", async_id),
        ("after", async_id),
    ]


def test_isolated_coroutines_compose_with_gather_and_task_groups(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    async def worker(n: int) -> int | None:
        als.enter_with(n)
        await asyncio.sleep(0)
        return als.get_store()

    async def main() -> tuple[list[int | None], list[int | None], int | None]:
        als.enter_with(-1)
        gathered = await asyncio.gather(*(als.run(n, worker, n) for n in range(5)))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(als.run(n, worker, n)) for n in range(5)]
        return list(gathered), [task.result() for task in tasks], als.get_store()

    assert run_async(main) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], -1)


def test_a_wrapped_coroutine_can_be_the_main_coroutine_of_a_loop(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> str | None:
        await asyncio.sleep(0)
        return await asyncio.create_task(read_after_yield(als))

    # The runner's own task drives the wrapper directly (asyncio.Runner.run).
    assert run_async(lambda: als.run("main", main)) == "main"
    assert als.get_store() is None


def test_trio_drives_a_wrapped_coroutine() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> list[str | None]:
        seen = [als.get_store()]
        await trio.sleep(0)
        seen.append(als.get_store())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, seen)
        return seen

    async def child(seen: list[str | None]) -> None:
        await trio.sleep(0)
        seen.append(als.get_store())

    assert trio.run(lambda: als.run("trio", main)) == ["trio"] * 3


def test_a_wrapped_coroutine_can_be_iterated_step_by_step() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body() -> str | None:
        await suspend()
        await suspend()
        return als.get_store()

    wrapped = als.run("inside", body)
    iterator = wrapped.__await__()
    assert next(iterator) is None
    assert next(iterator) is None
    with pytest.raises(StopIteration) as stopped:
        next(iterator)
    assert stopped.value.value == "inside"


@pytest.mark.parametrize("runner", ["run", "snapshot", "isolated"])
def test_a_store_carrying_coroutine_reports_the_ids_of_the_code_driving_it(runner: str) -> None:
    # run, exit, snapshot runners and isolated carry stores, not an execution
    # scope: each step reports the ids of whatever drives it (with runtime
    # tracking, the task awaiting it), while keeping the stores it captured.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body() -> list[tuple[int, str | None]]:
        seen = [(execution_async_id(), als.get_store())]
        await suspend()
        seen.append((execution_async_id(), als.get_store()))
        return seen

    def make() -> Coroutine[Any, Any, list[tuple[int, str | None]]]:
        if runner == "run":
            return als.run("inside", body)
        if runner == "snapshot":
            return als.run("inside", AsyncLocalStorage.snapshot)(body)
        return als.run("inside", lambda: isolated(body)())

    creator = AsyncResource("Creator")
    first_driver = AsyncResource("FirstDriver")
    second_driver = AsyncResource("SecondDriver")
    # Made inside the creator's scope (in a list, so that run_in_async_scope
    # does not give the coroutine the creator's scope on its own account).
    [wrapped] = creator.run_in_async_scope(lambda: [make()])
    first_driver.run_in_async_scope(wrapped.send, None)
    with pytest.raises(StopIteration) as stopped:
        second_driver.run_in_async_scope(wrapped.send, None)
    assert stopped.value.value == [
        (first_driver.async_id(), "inside"),
        (second_driver.async_id(), "inside"),
    ]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
def test_eager_tasks_keep_the_context_of_a_wrapped_coroutine(
    run_async: RunAsync, loop_name: str
) -> None:
    if loop_name == "uvloop" and sys.version_info >= (3, 13):
        # uvloop 0.23 passes eager_start to the factory, which 3.13's refuses,
        # with or without this library.
        pytest.skip("uvloop cannot use asyncio.eager_task_factory on Python 3.13")
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    eager_task_factory = getattr(asyncio, "eager_task_factory")  # noqa: B009 - absent on 3.11

    async def body(tag: str) -> list[str | None]:
        seen = [als.get_store()]  # runs inside create_task, eagerly
        await asyncio.sleep(0)
        seen.append(als.get_store())
        return [*seen, tag]

    async def main() -> tuple[list[str | None], list[str | None], str | None]:
        asyncio.get_running_loop().set_task_factory(eager_task_factory)
        als.enter_with("caller")
        task = asyncio.create_task(als.run("eager", body, "t"))
        assert als.get_store() == "caller"
        nested = await asyncio.create_task(als.exit(body, "exit"))
        return await task, nested, als.get_store()

    assert run_async(main) == (["eager", "eager", "t"], [None, None, "exit"], "caller")
