"""Generators and async generators: the leak bare Python has, and bind_generator's fix."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, AsyncResource, execution_async_id
from async_hooks.errors import InvalidArgTypeError
from async_hooks.propagation._generators import (
    BoundAsyncGenerator,
    BoundGenerator,
    bind_generator,
    bound_generator,
)

# The signature of the `run_async` fixture of conftest.py.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")


def entering_generator(value: str) -> Generator[str | None, None, str]:
    """Enters ``value``, then reports what it sees at each step."""
    request.enter_with(value)
    yield request.get_store()
    yield request.get_store()
    return "done"


# -- synchronous generators -------------------------------------------------


def test_bare_generator_leaks_its_value_to_the_consumer() -> None:
    def consumer() -> str | None:
        gen = entering_generator("from-generator")
        next(gen)
        return request.get_store()

    assert request.run("consumer", consumer) == "from-generator"


def test_bound_generator_keeps_its_value_inside() -> None:
    def consumer() -> tuple[str | None, str | None]:
        gen = bind_generator(entering_generator("from-generator"))
        seen_inside = next(gen)
        return seen_inside, request.get_store()

    assert request.run("consumer", consumer) == ("from-generator", "consumer")


def test_bare_generator_sees_what_the_consumer_enters_between_steps() -> None:
    def watcher() -> Generator[str | None, None, None]:
        while True:
            yield request.get_store()

    def consumer(gen: Generator[str | None, None, None]) -> list[str | None]:
        first = next(gen)
        request.enter_with("changed-by-consumer")
        return [first, next(gen)]

    assert request.run("creation", consumer, watcher()) == ["creation", "changed-by-consumer"]
    bound = request.run("creation", lambda: bind_generator(watcher()))
    assert request.run("other", consumer, bound) == ["creation", "creation"]


def test_bound_generator_changes_persist_between_its_own_steps() -> None:
    @bound_generator
    def counter() -> Generator[str | None, None, None]:
        request.enter_with("first")
        yield request.get_store()
        yield request.get_store()
        request.enter_with("second")
        yield request.get_store()

    gen = request.run("creation", counter)
    request.enter_with("consumer-between-steps")
    try:
        assert list(gen) == ["first", "first", "second"]
        assert request.get_store() == "consumer-between-steps"
    finally:
        request.enter_with(None)


def test_bound_generator_send_throw_close_and_return_value() -> None:
    seen: list[object] = []

    @bound_generator
    def echo() -> Generator[str | None, str, str]:
        try:
            while True:
                received = yield request.get_store()
                seen.append((received, request.get_store()))
        except KeyError as error:
            seen.append(("thrown", error.args[0], request.get_store()))
            yield "after-throw"
            return "returned"
        finally:
            seen.append(("finally", request.get_store()))

    gen = request.run("creation", echo)
    assert next(gen) == "creation"
    assert request.run("consumer", gen.send, "hello") == "creation"
    assert request.run("consumer", gen.throw, KeyError("boom")) == "after-throw"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "returned"
    assert seen == [
        ("hello", "creation"),
        ("thrown", "boom", "creation"),
        ("finally", "creation"),
    ]


def test_yield_from_a_bound_generator_returns_its_value() -> None:
    def delegating() -> Generator[str | None, None, list[object]]:
        result = yield from bind_generator(entering_generator("inner"))
        return [result, request.get_store()]

    def consume() -> list[object]:
        return list(_drain(delegating()))

    assert request.run("outer", consume) == ["inner", "inner", ["done", "outer"]]


def _drain(gen: Generator[object, None, object]) -> Generator[object, None, None]:
    while True:
        try:
            yield next(gen)
        except StopIteration as stop:
            yield stop.value
            return


@pytest.mark.parametrize("how", ["close", "collect"])
def test_abandoned_bound_generator_is_closed_in_its_own_context(how: str) -> None:
    seen: list[str | None] = []

    def cleanup_watcher() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            seen.append(request.get_store())

    def start(bind: bool) -> Generator[int, None, None]:
        gen = cleanup_watcher()
        if bind:
            gen = bind_generator(gen)
        next(gen)
        return gen

    for bind in (False, True):
        holder = [request.run("creation", start, bind)]
        if how == "close":
            request.run("closer", holder[0].close)
        else:
            request.run("collector", holder.clear)  # the last reference goes here
            gc.collect()
    assert seen == ["closer" if how == "close" else "collector", "creation"]


def test_consecutive_bound_generators_do_not_leak_into_each_other() -> None:
    @bound_generator
    def job(name: str) -> Generator[str | None, None, None]:
        before = request.get_store()
        request.enter_with(name)
        yield before

    assert [next(job("one")), next(job("two"))] == [None, None]
    assert request.get_store() is None


def test_running_bound_generator_reports_the_generators_own_error() -> None:
    holder: list[Generator[None, None, None]] = []

    def reentrant() -> Generator[None, None, None]:
        next(holder[0])
        yield

    holder.append(bind_generator(reentrant()))
    with pytest.raises(ValueError, match="already executing"):
        next(holder[0])


def test_bound_generator_exposes_the_wrapped_generators_attributes() -> None:
    gen = bind_generator(entering_generator("x"))
    assert isinstance(gen, BoundGenerator)
    assert getattr(gen, "__name__", None) == "entering_generator"
    assert getattr(gen, "gi_frame", None) is not None
    assert "entering_generator" in repr(gen)
    assert bind_generator(gen) is gen


def test_bind_generator_rejects_what_is_not_a_generator() -> None:
    with pytest.raises(InvalidArgTypeError, match="must be a generator or an async generator"):
        bind_generator([1, 2, 3])  # type: ignore[call-overload]
    with pytest.raises(TypeError) as error:
        bind_generator(iter([1]))  # type: ignore[call-overload]
    assert getattr(error.value, "code", None) == "ERR_INVALID_ARG_TYPE"


def test_bound_generator_rejects_a_non_callable() -> None:
    with pytest.raises(InvalidArgTypeError, match='"fn" argument must be callable'):
        bound_generator(42)  # type: ignore[call-overload]


def test_bound_generator_function_returning_something_else_is_reported() -> None:
    @bound_generator
    def not_a_generator() -> Generator[int, None, None]:
        return [1]  # type: ignore[return-value]

    with pytest.raises(InvalidArgTypeError, match="Received type list"):
        not_a_generator()


# -- async generators ---------------------------------------------------------


async def entering_async_generator(value: str) -> AsyncGenerator[str | None, None]:
    request.enter_with(value)
    yield request.get_store()
    yield request.get_store()


def test_bare_async_generator_leaks_its_value_to_the_consumer(run_async: RunAsync) -> None:
    async def main() -> None:
        request.enter_with("consumer")
        gen = entering_async_generator("from-generator")
        assert await gen.__anext__() == "from-generator"
        assert request.get_store() == "from-generator"
        await gen.aclose()

    run_async(main)


def test_bound_async_generator_keeps_its_value_inside(run_async: RunAsync) -> None:
    async def main() -> None:
        request.enter_with("consumer")
        gen = bind_generator(entering_async_generator("from-generator"))
        assert isinstance(gen, BoundAsyncGenerator)
        assert [value async for value in gen] == ["from-generator", "from-generator"]
        assert request.get_store() == "consumer"

    run_async(main)


def test_bound_async_generator_resumes_in_its_creation_context(
    run_async: RunAsync,
) -> None:
    @bound_generator
    async def watcher() -> AsyncGenerator[str | None, str]:
        while True:
            received = yield request.get_store()
            await asyncio.sleep(0)
            request.enter_with(f"{request.get_store()}+{received}")

    async def main() -> None:
        gen = request.run("creation", watcher)
        request.enter_with("consumer")
        assert await gen.__anext__() == "creation"
        assert await gen.asend("a") == "creation+a"
        assert await gen.asend("b") == "creation+a+b"
        assert request.get_store() == "consumer"
        with pytest.raises(KeyError):
            await gen.athrow(KeyError("stop"))
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()

    run_async(main)


def test_bound_async_generator_aclose_runs_finally_in_its_context(
    run_async: RunAsync,
) -> None:
    seen: list[str | None] = []

    @bound_generator
    async def guarded() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            seen.append(request.get_store())

    async def main() -> None:
        gen = request.run("creation", guarded)
        assert await gen.__anext__() == 1
        await request.run("closer", gen.aclose)
        assert seen == ["creation"]

    run_async(main)


def test_abandoned_async_generator_is_finalized_in_the_droppers_context_unless_bound(
    run_async: RunAsync,
) -> None:
    seen: dict[str, str | None] = {}

    async def guarded(label: str) -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            seen[label] = request.get_store()

    async def main() -> None:
        holder: dict[str, AsyncGenerator[int, None]] = {}

        async def consumer() -> None:
            request.enter_with("consumer")
            holder["bare"] = guarded("bare")
            holder["bound"] = bind_generator(guarded("bound"))
            for gen in holder.values():
                assert await gen.__anext__() == 1

        async def dropper() -> None:
            request.enter_with("dropper")
            holder.clear()  # the last references go away in this task

        await asyncio.create_task(consumer())
        await asyncio.create_task(dropper())
        gc.collect()
        for _ in range(5):  # the loop closes abandoned generators in new tasks
            await asyncio.sleep(0)
        assert seen == {"bare": "dropper", "bound": "consumer"}

    run_async(main)


def test_async_generators_left_open_are_closed_at_shutdown_in_their_context(
    run_async: RunAsync,
) -> None:
    seen: dict[str, str | None] = {}
    kept: list[AsyncGenerator[int, None]] = []

    async def guarded(label: str) -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            seen[label] = request.get_store()

    async def main() -> None:
        async def consumer() -> None:
            request.enter_with("consumer")
            kept.append(guarded("bare"))
            kept.append(bind_generator(guarded("bound")))
            for gen in kept:
                await gen.__anext__()

        await asyncio.create_task(consumer())

    run_async(main)  # the runner's shutdown_asyncgens closes both
    assert seen == {"bare": None, "bound": "consumer"}


def test_consecutive_bound_async_generators_do_not_leak(run_async: RunAsync) -> None:
    @bound_generator
    async def job(name: str) -> AsyncGenerator[str | None, None]:
        before = request.get_store()
        request.enter_with(name)
        yield before

    async def main() -> None:
        first = [value async for value in job("one")]
        second = [value async for value in job("two")]
        assert first == second == [None]
        assert request.get_store() is None

    run_async(main)


def test_bound_async_generator_outside_a_loop_still_binds() -> None:
    # No loop: no async generator hooks to redirect, the steps are bound all the same.
    gen = request.run("creation", lambda: bind_generator(entering_async_generator("inside")))
    step = gen.__anext__()
    with pytest.raises(StopIteration) as stop:
        step.send(None)
    assert stop.value.value == "inside"
    assert request.get_store() is None
    closing = gen.aclose()
    with pytest.raises(StopIteration):
        closing.send(None)


# -- trio ---------------------------------------------------------------------------


def test_bound_async_generator_under_trio() -> None:
    import trio

    seen: dict[str, str | None] = {}
    kept: list[AsyncGenerator[str | None, None]] = []

    async def guarded(label: str) -> AsyncGenerator[str | None, None]:
        try:
            yield request.get_store()
            await trio.sleep(0)
            yield request.get_store()
        finally:
            seen[label] = request.get_store()

    async def main() -> None:
        holder: dict[str, AsyncGenerator[str | None, None]] = {}
        request.enter_with("consumer")
        holder["bare"] = guarded("bare")
        holder["bound"] = bind_generator(guarded("bound"))
        for gen in holder.values():
            assert await gen.__anext__() == "consumer"
        request.enter_with("dropper")
        holder["bound"] = bind_generator(holder.pop("bound"))  # already bound: kept as is
        holder.clear()
        gc.collect()
        await trio.sleep(0.01)  # trio closes abandoned generators in system tasks
        request.enter_with("left open")
        kept.append(bind_generator(guarded("open at exit")))
        assert await kept[0].__anext__() == "left open"

    # trio warns about every generator collected unexhausted, bound or not.
    with pytest.warns(ResourceWarning, match="garbage collected before it had been exhausted"):
        trio.run(main)
    assert seen == {"bare": None, "bound": "consumer", "open at exit": "left open"}


def test_cancelling_a_task_inside_a_bound_async_generator(run_async: RunAsync) -> None:
    seen: list[str | None] = []

    @bound_generator
    async def slow() -> AsyncGenerator[int, None]:
        try:
            yield 1
            await asyncio.sleep(10)
            yield 2
        except asyncio.CancelledError:
            seen.append(request.get_store())
            raise

    async def main() -> None:
        gen = request.run("creation", slow)
        assert await gen.__anext__() == 1

        async def consumer() -> None:
            request.enter_with("consumer task")
            await gen.__anext__()

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["creation"]

    run_async(main)


def test_bound_async_generator_consumed_by_other_tasks(run_async: RunAsync) -> None:
    @bound_generator
    async def numbered() -> AsyncGenerator[str | None, None]:
        while True:
            await asyncio.sleep(0)
            yield request.get_store()

    async def main() -> None:
        gen = request.run("creation", numbered)

        async def consumer(name: str) -> tuple[str | None, str | None]:
            request.enter_with(name)
            return await gen.__anext__(), request.get_store()

        first = await asyncio.create_task(consumer("task-1"))
        second = await asyncio.create_task(consumer("task-2"))
        assert (first, second) == (("creation", "task-1"), ("creation", "task-2"))
        await gen.aclose()

    run_async(main)


def test_bound_async_generator_steps_as_tasks_and_with_builtins(run_async: RunAsync) -> None:
    @bound_generator
    async def numbers() -> AsyncGenerator[str | None, None]:
        yield request.get_store()
        yield request.get_store()

    async def main() -> None:
        gen = request.run("creation", numbers)
        assert await asyncio.create_task(gen.__anext__()) == "creation"
        assert await asyncio.wait_for(anext(gen), 5) == "creation"
        assert await anext(gen, "exhausted") == "exhausted"

    run_async(main)


# -- execution ids: the driver's, as for the coroutines of run/snapshot ----------------


def test_bound_generator_steps_report_the_ids_of_the_code_driving_them() -> None:
    def ids() -> Generator[tuple[int, str | None], None, None]:
        while True:
            yield execution_async_id(), request.get_store()

    gen = request.run("creation", lambda: bind_generator(ids()))
    first, second = AsyncResource("FirstDriver"), AsyncResource("SecondDriver")
    assert first.run_in_async_scope(next, gen) == (first.async_id(), "creation")
    assert second.run_in_async_scope(next, gen) == (second.async_id(), "creation")
    assert first.run_in_async_scope(next, gen) == (first.async_id(), "creation")
    assert next(gen) == (execution_async_id(), "creation")


def test_bound_async_generator_steps_report_the_ids_of_the_code_driving_them(
    run_async: RunAsync,
) -> None:
    async def ids() -> AsyncGenerator[tuple[int, str | None], None]:
        while True:
            yield execution_async_id(), request.get_store()
            await asyncio.sleep(0)

    async def main() -> None:
        gen = request.run("creation", lambda: bind_generator(ids()))
        first, second = AsyncResource("FirstDriver"), AsyncResource("SecondDriver")

        async def drive() -> tuple[int, str | None]:
            return await gen.__anext__()

        assert await first.run_in_async_scope(drive) == (first.async_id(), "creation")
        assert await second.run_in_async_scope(drive) == (second.async_id(), "creation")
        assert await drive() == (execution_async_id(), "creation")
        await gen.aclose()

    run_async(main)


def test_bound_generator_decorates_methods() -> None:
    class Repository:
        def __init__(self, rows: list[str]) -> None:
            self.rows = rows

        @bound_generator
        def scan(self) -> Generator[tuple[str, str | None], None, None]:
            for row in self.rows:
                yield row, request.get_store()
                request.enter_with(f"after {row}")

    scan = request.run("creation", Repository(["a", "b"]).scan)
    assert list(scan) == [("a", "creation"), ("b", "after a")]
    assert request.get_store() is None
    assert Repository.scan.__name__ == "scan"
    assert Repository.scan.__wrapped__ is not None  # type: ignore[attr-defined]
