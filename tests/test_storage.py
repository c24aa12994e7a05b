"""AsyncLocalStorage: synchronous rules and the asyncio ones."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import Callable, Coroutine
from contextvars import copy_context
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, AsyncResource, isolated
from async_hooks.errors import InvalidArgTypeError
from async_hooks.lowlevel import accelerated

# The signature of the `run_async` fixture of conftest.py.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]

# -- construction -------------------------------------------------------------


def test_name_defaults_to_the_empty_string_and_is_read_only() -> None:
    assert AsyncLocalStorage[int]().name == ""
    als: AsyncLocalStorage[int] = AsyncLocalStorage(name="request")
    assert als.name == "request"
    with pytest.raises(AttributeError):
        als.name = "renamed"  # type: ignore[misc]
    assert als.name == "request"


def test_a_name_that_is_not_a_str_is_a_type_error() -> None:
    with pytest.raises(InvalidArgTypeError, match="name") as caught:
        AsyncLocalStorage(name=7)  # type: ignore[arg-type]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


def test_get_store_is_none_outside_any_run_without_a_default() -> None:
    assert AsyncLocalStorage[int]().get_store() is None


def test_the_default_is_returned_only_where_the_instance_has_no_entry() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="fallback")
    assert als.default == "fallback"
    assert als.get_store() == "fallback"
    assert als.run("value", als.get_store) == "value"
    # run(None, fn) stores None: the default is not what an explicit None gives.
    assert als.run(None, als.get_store) is None
    # exit gives None, not the default.
    assert als.run("value", als.exit, als.get_store) is None
    assert als.exit(als.get_store) is None
    assert als.get_store() == "fallback"


# -- run ----------------------------------------------------------------------


def test_run_forwards_positional_and_keyword_arguments_and_returns_the_result() -> None:
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    store = {"id": 2}

    def handler(a: int, b: int, *, scale: int) -> tuple[int, dict[str, int] | None]:
        return (a + b) * scale, als.get_store()

    assert als.run(store, handler, 1, 2, scale=10) == (30, store)
    assert als.get_store() is None


def test_exit_forwards_arguments_returns_the_result_and_restores_the_store() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def inside(a: int, *, b: int) -> tuple[int, str | None]:
        return a - b, als.get_store()

    def within_run() -> tuple[tuple[int, str | None], str | None]:
        result = als.exit(inside, 10, b=3)
        return result, als.get_store()

    assert als.run("store", within_run) == ((7, None), "store")

    def fail() -> None:
        raise OSError("from exit")

    def failing_exit() -> str | None:
        with pytest.raises(OSError, match="from exit"):
            als.exit(fail)
        return als.get_store()

    assert als.run("store", failing_exit) == "store"


def test_run_accepts_store_and_fn_as_names_in_kwargs_of_fn() -> None:
    # store and fn are positional-only, so fn may take arguments with those names.
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    def takes_reserved_names(store: str, fn: str) -> str:
        return store + fn

    assert als.run(1, takes_reserved_names, store="s", fn="f") == "sf"


def test_run_restores_the_previous_store_after_return_and_after_an_exception() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def outer() -> None:
        assert als.get_store() == "outer"
        als.run("inner", lambda: None)
        assert als.get_store() == "outer"
        error = KeyError("boom")

        def fail() -> None:
            assert als.get_store() == "failing"
            raise error

        with pytest.raises(KeyError) as caught:
            als.run("failing", fail)
        # The very same exception comes out, unchanged.
        assert caught.value is error
        assert als.get_store() == "outer"

    als.run("outer", outer)
    assert als.get_store() is None


def test_run_with_a_non_callable_is_a_type_error_and_restores_the_store() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    with pytest.raises(InvalidArgTypeError, match='"fn"') as caught:
        als.run(1, "not callable")  # type: ignore[call-overload]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"
    assert als.get_store() is None


def test_a_type_error_raised_by_fn_itself_is_not_rewritten() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    error = TypeError("user's own")

    def fail() -> None:
        raise error

    with pytest.raises(TypeError) as caught:
        als.run(1, fail)
    assert caught.value is error


def test_instances_are_isolated_from_each_other() -> None:
    first: AsyncLocalStorage[str] = AsyncLocalStorage(name="first")
    second: AsyncLocalStorage[str] = AsyncLocalStorage(name="second")

    def inside_first() -> tuple[str | None, str | None, str | None, str | None]:
        in_both = second.run("b", lambda: (first.get_store(), second.get_store()))
        # The run of `second` restored only its own store.
        return (*in_both, first.get_store(), second.get_store())

    assert first.run("a", inside_first) == ("a", "b", "a", None)

    def change_the_other() -> None:
        second.enter_with("entered inside first.run")

    def scope() -> str | None:
        first.run("a", change_the_other)
        return second.get_store()

    # A run of `first` does not undo what happened to `second` inside it.
    assert copy_context().run(scope) == "entered inside first.run"


def test_runs_nest_a_thousand_deep_and_unwind() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    depth = 1000
    if accelerated() and sys.version_info[:2] == (3, 12):
        # CPython 3.12 bounds calls from C back into Python by a fixed limit
        # (1500 units, three per level of a compiled run) that
        # sys.setrecursionlimit does not raise: docs/accelerator.md.
        depth = 400

    def descend(level: int) -> int:
        assert als.get_store() == level
        if level == depth:
            return level
        result = als.run(level + 1, descend, level + 1)
        assert als.get_store() == level
        return result

    # Each level takes two Python frames (descend and run): make room for them.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * depth + 200))
    try:
        assert als.run(0, descend, 0) == depth
    finally:
        sys.setrecursionlimit(limit)
    assert als.get_store() is None


def test_run_in_one_thread_does_not_reach_another() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    entered = threading.Event()
    release = threading.Event()
    seen: list[str | None] = []

    def hold() -> None:
        entered.set()
        release.wait(5)

    def worker() -> None:
        als.run("worker", hold)

    thread = threading.Thread(target=worker)
    thread.start()
    entered.wait(5)
    seen.append(als.get_store())
    release.set()
    thread.join()
    assert seen == [None]


# -- enter_with and with_scope -------------------------------------------------


def test_enter_with_lasts_for_the_rest_of_the_synchronous_execution() -> None:
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    store = {"id": 1}

    def top_level() -> list[dict[str, int] | None]:
        seen = [als.get_store()]
        assert als.enter_with(store) is None  # type: ignore[func-returns-value]
        seen.append(als.get_store())
        seen.append(als.get_store())
        return seen

    # A fresh context stands for the top level of a program, without leaking here.
    assert copy_context().run(top_level) == [None, store, store]


def test_enter_with_inside_run_ends_with_the_run() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def body() -> str | None:
        als.enter_with("entered")
        return als.get_store()

    assert als.run("run", body) == "entered"
    assert als.get_store() is None


def test_node_s_event_handler_example_for_enter_with() -> None:
    # Node's docs: a store entered in one handler is seen by the next and after emit().
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    store = {"id": 1}
    handlers: list[Callable[[], Any]] = [
        lambda: als.enter_with(store),
        als.get_store,
    ]

    def program() -> list[Any]:
        before = als.get_store()
        results = [handler() for handler in handlers]
        return [before, results[1], als.get_store()]

    assert copy_context().run(program) == [None, store, store]


def test_with_scope_is_a_context_manager_that_restores_on_exit() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")
    with als.with_scope("scoped") as store:
        assert store == "scoped"
        assert als.get_store() == "scoped"
        with als.with_scope("nested"):
            assert als.get_store() == "nested"
        assert als.get_store() == "scoped"
    assert als.get_store() == "default"


def test_with_scope_restores_on_exception_and_lets_it_propagate() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    error = ValueError("inside the block")
    with pytest.raises(ValueError, match="inside the block") as caught, als.with_scope("scoped"):
        raise error
    assert caught.value is error
    assert als.get_store() is None


# -- disable -------------------------------------------------------------------


def test_disable_returns_the_default_everywhere_until_run_or_enter_with() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")

    def program() -> None:
        als.enter_with("entered")
        snapshot = AsyncLocalStorage.snapshot()
        captured = copy_context()
        # A lambda, not als.get_store itself: that bound method is fetched when evaluated.
        bound = AsyncLocalStorage.bind(lambda: als.get_store())
        resource = AsyncResource("Captured")
        assert als.disable() is None  # type: ignore[func-returns-value]
        assert als.get_store() == "default"
        # Contexts captured while the value was entered never bring it back.
        assert snapshot(lambda: als.get_store()) == "default"
        assert captured.run(lambda: als.get_store()) == "default"
        assert bound() == "default"
        assert resource.run_in_async_scope(lambda: als.get_store()) == "default"
        # run and enter_with work again after.
        assert als.run("again", als.get_store) == "again"
        assert als.get_store() == "default"
        als.enter_with("entered again")
        assert als.get_store() == "entered again"
        # And the old captures still do not see the new value: it was entered later.
        assert snapshot(lambda: als.get_store()) == "default"

    copy_context().run(program)


def test_disable_inside_run_is_not_undone_by_the_run_ending() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def disable_inside() -> str | None:
        als.disable()
        return als.get_store()

    def program() -> None:
        als.enter_with("outer")
        assert als.run("inner", disable_inside) is None
        # The outer value was entered before disable(): it never comes back.
        assert als.get_store() is None

    copy_context().run(program)


def test_enter_with_after_disable_inside_run_ends_with_the_run() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")

    def disable_then_enter() -> str | None:
        als.disable()
        als.enter_with("entered after disable")
        return als.get_store()

    def program() -> None:
        assert als.run("inner", disable_then_enter) == "entered after disable"
        assert als.get_store() == "default"
        with als.with_scope("scoped"):
            disable_then_enter()
        assert als.get_store() == "default"

    copy_context().run(program)


def test_disable_reaches_tasks_created_before_it(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")

    async def main() -> list[str | None]:
        gate = asyncio.Event()

        async def task_body() -> list[str | None]:
            seen = [als.get_store()]
            await gate.wait()
            seen.append(als.get_store())
            return seen

        task = als.run("stored", asyncio.create_task, task_body())
        await asyncio.sleep(0)
        als.disable()
        gate.set()
        return await task

    assert run_async(main) == ["stored", "default"]


# -- bind and snapshot -----------------------------------------------------------


def test_node_s_snapshot_example_returns_123() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    run_in_async_scope = als.run(123, AsyncLocalStorage.snapshot)
    assert als.run(321, lambda: run_in_async_scope(als.get_store)) == 123


def test_node_s_snapshot_class_example_returns_123() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    class Foo:
        def __init__(self) -> None:
            self._run_in_async_scope = AsyncLocalStorage.snapshot()

        def get(self) -> int | None:
            return self._run_in_async_scope(als.get_store)

    foo = als.run(123, Foo)
    assert als.run(321, foo.get) == 123


def test_snapshot_captures_every_instance_and_forwards_arguments() -> None:
    first: AsyncLocalStorage[str] = AsyncLocalStorage()
    second: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = first.run("a", second.run, "b", AsyncLocalStorage.snapshot)

    def read(prefix: str, *, suffix: str) -> str:
        return f"{prefix}{first.get_store()}{second.get_store()}{suffix}"

    assert runner(read, "<", suffix=">") == "<ab>"


@pytest.mark.parametrize("kind", ["snapshot", "bind"])
def test_each_call_runs_in_a_fresh_copy(kind: str) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    other: AsyncLocalStorage[int] = AsyncLocalStorage()

    def change() -> tuple[str | None, int | None]:
        seen = (als.get_store(), other.get_store())
        als.enter_with("changed")
        other.enter_with(99)
        return seen

    runner = als.run("captured", AsyncLocalStorage.snapshot)
    bound = als.run("captured", AsyncLocalStorage.bind, change)

    def call() -> tuple[str | None, int | None]:
        return runner(change) if kind == "snapshot" else bound()

    assert call() == ("captured", None)
    # What the first call entered does not reach the second, nor the caller.
    assert call() == ("captured", None)
    assert als.get_store() is None
    assert other.get_store() is None


def test_snapshot_runners_nest_and_recurse() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = als.run("snap", AsyncLocalStorage.snapshot)

    def recurse(level: int) -> list[str | None]:
        als.enter_with(f"level {level}")  # visible only within this call
        if level == 0:
            return [als.get_store()]
        return [*runner(recurse, level - 1), als.get_store()]

    assert runner(recurse, 3) == ["level 0", "level 1", "level 2", "level 3"]
    # Nested: a runner called from inside another runner's call.
    other = als.run("other", AsyncLocalStorage.snapshot)
    assert runner(lambda: (als.get_store(), other(als.get_store), als.get_store())) == (
        "snap",
        "other",
        "snap",
    )


def test_bound_functions_are_re_entrant_and_recursive() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    def count_down(n: int) -> list[int | None]:
        if n == 0:
            return [als.get_store()]
        return [als.get_store(), *bound(n - 1)]

    bound = als.run(5, AsyncLocalStorage.bind, count_down)
    assert als.run(6, bound, 3) == [5, 5, 5, 5]


def test_bind_keeps_the_function_s_identity() -> None:
    def handler() -> None:
        """Handles."""

    bound = AsyncLocalStorage.bind(handler)
    assert bound.__name__ == "handler"
    assert bound.__doc__ == "Handles."


def test_bind_and_snapshot_reject_non_callables() -> None:
    with pytest.raises(InvalidArgTypeError) as caught:
        AsyncLocalStorage.bind("nope")  # type: ignore[arg-type]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"
    runner = AsyncLocalStorage.snapshot()
    with pytest.raises(InvalidArgTypeError):
        runner(42)  # type: ignore[call-overload]


# -- asyncio: the store follows the work -------------------------------------------


def test_store_is_seen_by_tasks_and_callbacks_created_inside_run(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> dict[str, str | None]:
        loop = asyncio.get_running_loop()
        seen: dict[str, str | None] = {}
        done = loop.create_future()

        async def child() -> None:
            await asyncio.sleep(0)
            seen["task"] = als.get_store()

        def schedule() -> asyncio.Task[None]:
            loop.call_soon(lambda: seen.__setitem__("call_soon", als.get_store()))

            def at_timer() -> None:
                seen["call_later"] = als.get_store()
                done.set_result(None)

            loop.call_later(0.001, at_timer)
            return asyncio.create_task(child())

        task = als.run("request", schedule)
        assert als.get_store() is None
        await task
        await done
        seen["after"] = als.get_store()
        return seen

    assert run_async(main) == {
        "call_soon": "request",
        "task": "request",
        "call_later": "request",
        "after": None,
    }


def test_await_run_with_a_coroutine_function_keeps_the_store(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler(request: str, *, suffix: str) -> list[str | None]:
        seen = [als.get_store()]
        await asyncio.sleep(0)
        seen.append(als.get_store())
        task = asyncio.create_task(asyncio.sleep(0, als.get_store()))
        seen.append(await task)
        child = asyncio.create_task(_read_later(als))
        seen.append(await child)
        return [*seen, request + suffix]

    async def main() -> tuple[list[str | None], str | None]:
        result = await als.run("store", handler, "req", suffix="!")
        return result, als.get_store()

    assert run_async(main) == (["store", "store", "store", "store", "req!"], None)


async def _read_later(als: AsyncLocalStorage[str]) -> str | None:
    await asyncio.sleep(0)
    return als.get_store()


def test_the_caller_s_store_is_untouched_by_an_awaited_run(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler() -> None:
        await asyncio.sleep(0)
        als.enter_with("changed by the handler")
        await asyncio.sleep(0)

    async def main() -> list[str | None]:
        als.enter_with("caller")
        await als.run("handler", handler)
        after_run = als.get_store()
        await als.exit(handler)
        return [after_run, als.get_store()]

    assert run_async(main) == ["caller", "caller"]


def test_exit_with_a_coroutine_function_keeps_none(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")

    async def body() -> list[str | None]:
        seen = [als.get_store()]
        await asyncio.sleep(0)
        seen.append(als.get_store())
        seen.append(await asyncio.create_task(_read_later(als)))
        return seen

    async def main() -> tuple[list[str | None], str | None]:
        als.enter_with("outer")
        return await als.exit(body), als.get_store()

    assert run_async(main) == ([None, None, None], "outer")


def test_bound_functions_and_snapshot_runners_keep_context_for_coroutines(
    run_async: RunAsync,
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body(tag: str) -> list[str | None]:
        seen = [als.get_store()]
        await asyncio.sleep(0)
        seen.append(als.get_store())
        seen.append(await asyncio.create_task(_read_later(als)))
        als.enter_with(f"{tag} changed")
        return seen

    async def main() -> list[object]:
        bound = als.run("bound", AsyncLocalStorage.bind, body)
        runner = als.run("snap", AsyncLocalStorage.snapshot)
        als.enter_with("caller")
        return [
            await bound("b"),
            await runner(body, "s"),
            await bound("again"),  # the first call's change did not stick
            als.get_store(),
        ]

    assert run_async(main) == [
        ["bound"] * 3,
        ["snap"] * 3,
        ["bound"] * 3,
        "caller",
    ]


def test_enter_with_inside_a_task_stays_in_that_task(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> list[str | None]:
        loop = asyncio.get_running_loop()
        later = loop.create_future()

        async def task_body() -> str | None:
            als.enter_with("task")
            await asyncio.sleep(0)
            # What the task schedules after entering sees the value.
            loop.call_soon(lambda: later.set_result(als.get_store()))
            return als.get_store()

        in_task = await asyncio.create_task(task_body())
        return [in_task, await later, als.get_store()]

    assert run_async(main) == ["task", "task", None]


def test_enter_with_inside_a_callback_lasts_for_that_callback(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> list[str | None]:
        loop = asyncio.get_running_loop()
        seen: list[str | None] = []
        done = loop.create_future()

        def callback() -> None:
            als.enter_with("callback")
            seen.append(als.get_store())

            def scheduled_by_callback() -> None:
                seen.append(als.get_store())
                done.set_result(None)

            loop.call_soon(scheduled_by_callback)

        loop.call_soon(callback)
        loop.call_soon(lambda: seen.append(als.get_store()))  # a separate callback
        await done
        seen.append(als.get_store())
        return seen

    assert run_async(main) == ["callback", None, "callback", None]


def test_enter_with_in_an_awaited_coroutine_reaches_the_caller(run_async: RunAsync) -> None:
    # Python shares one context between a coroutine and its awaiter.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def callee() -> None:
        await asyncio.sleep(0)
        als.enter_with("callee")

    async def main() -> str | None:
        await callee()
        return als.get_store()

    assert run_async(main) == "callee"


def test_isolated_keeps_a_coroutine_s_enter_with_inside(run_async: RunAsync) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    @isolated
    async def decorated(value: str, *, then: str) -> str | None:
        assert als.get_store() == "caller"
        als.enter_with(value)
        await asyncio.sleep(0)
        als.enter_with(then)
        return als.get_store()

    async def plain() -> str | None:
        als.enter_with("plain")
        await asyncio.sleep(0)
        return als.get_store()

    async def main() -> list[str | None]:
        als.enter_with("caller")
        seen = [await decorated("first", then="second"), als.get_store()]
        seen += [await isolated(plain()), als.get_store()]
        return seen

    assert run_async(main) == ["second", "caller", "plain", "caller"]
    assert decorated.__name__ == "decorated"


def test_isolated_rejects_what_is_neither_a_coroutine_nor_callable() -> None:
    with pytest.raises(InvalidArgTypeError) as caught:
        isolated(3)  # type: ignore[call-overload]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


def test_a_thousand_concurrent_tasks_never_see_each_other_s_store(
    run_async: RunAsync,
) -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    shared: AsyncLocalStorage[str] = AsyncLocalStorage()
    rng = random.Random(20240521)
    # Seeded random pauses: zero-length yields and short sleeps, so tasks interleave.
    plans = [[rng.choice((0.0, 0.0, 0.0005, 0.001)) for _ in range(4)] for _ in range(1000)]

    async def nested_read() -> int | None:
        await asyncio.sleep(0)
        return als.get_store()

    async def handler(n: int) -> tuple[list[int | None], list[int | None], list[str | None]]:
        own: list[int | None] = []
        nested: list[int | None] = []
        shared_seen: list[str | None] = []
        for delay in plans[n]:
            await asyncio.sleep(delay)
            own.append(als.get_store())
            shared_seen.append(shared.get_store())
            if n % 3 == 0:
                # A nested run in some tasks: its store must not escape into the task.
                nested.append(await als.run(n + 10_000, nested_read))
        return own, nested, shared_seen

    async def main() -> list[tuple[list[int | None], list[int | None], list[str | None]]]:
        with shared.with_scope("shared"):
            tasks = [asyncio.create_task(als.run(n, handler, n)) for n in range(1000)]
        return await asyncio.gather(*tasks)

    results = run_async(main)
    assert len(results) == 1000
    for n, (own, nested, shared_seen) in enumerate(results):
        assert own == [n] * 4
        assert nested == ([n + 10_000] * 4 if n % 3 == 0 else [])
        assert shared_seen == ["shared"] * 4


def test_a_coroutine_returned_by_a_sync_fn_sees_what_fn_entered(run_async: RunAsync) -> None:
    # Node: `run(store, () => { other.enterWith(x); return foo(); })` - foo sees x.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    other: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def foo() -> tuple[str | None, str | None]:
        await asyncio.sleep(0)
        return als.get_store(), other.get_store()

    def prepare() -> Coroutine[Any, Any, tuple[str | None, str | None]]:
        other.enter_with("entered by fn")
        return foo()

    async def main() -> tuple[tuple[str | None, str | None], str | None]:
        return await als.run("store", prepare), als.get_store()

    assert run_async(main) == (("store", "entered by fn"), None)


# -- a model of the synchronous rules, checked on random programs ------------------------

# A program is a list of operations on two instances (0 and 1):
#   ("enter", i, v) | ("run", i, v, body) | ("exit", i, body) | ("scope", i, v, body)
#   | ("take",) | ("call", k, body) | ("disable", i)
# After every operation both instances' get_store() must match the model.

DEFAULTS = ("default-0", "default-1")
Program = list[tuple[Any, ...]]


def _programs() -> Any:
    from hypothesis import strategies as st

    instance = st.integers(0, 1)
    value = st.sampled_from(["a", "b", "c", None])
    leaf = st.one_of(
        st.tuples(st.just("enter"), instance, value),
        st.tuples(st.just("take")),
        st.tuples(st.just("disable"), instance),
    )

    def nest(body: Any) -> Any:
        return st.one_of(
            st.tuples(st.just("run"), instance, value, body),
            st.tuples(st.just("exit"), instance, body),
            st.tuples(st.just("scope"), instance, value, body),
            st.tuples(st.just("call"), st.integers(0, 5), body),
        )

    return st.lists(st.recursive(leaf, lambda ops: nest(st.lists(ops, max_size=4)), max_leaves=12))


class _Model:
    """What get_store() must return: each entry is (value, generation of the instance)."""

    def __init__(self) -> None:
        self.generation = [0, 0]

    def read(self, state: list[tuple[Any, int]], i: int) -> Any:
        value, generation = state[i]
        return value if generation == self.generation[i] else DEFAULTS[i]


def _execute(
    program: Program,
    stores: list[AsyncLocalStorage[Any]],
    model: _Model,
    state: list[tuple[Any, int]],
    snapshots: list[tuple[Any, list[tuple[Any, int]]]],
) -> None:
    for operation in program:
        kind = operation[0]
        if kind == "enter":
            _, i, value = operation
            stores[i].enter_with(value)
            state[i] = (value, model.generation[i])
        elif kind == "disable":
            stores[operation[1]].disable()
            model.generation[operation[1]] += 1
        elif kind == "take":
            snapshots.append((AsyncLocalStorage.snapshot(), list(state)))
        elif kind == "call":
            _, k, body = operation
            if snapshots:
                runner, captured = snapshots[k % len(snapshots)]
                # A fresh copy per call: nothing of the call's own changes survives it.
                runner(_execute, body, stores, model, list(captured), snapshots)
        else:
            i = operation[1]
            value = None if kind == "exit" else operation[2]
            body = operation[-1]
            saved = state[i]
            inner = list(state)
            inner[i] = (value, model.generation[i])

            def nested(inner: list[tuple[Any, int]] = inner, body: Program = body) -> None:
                _execute(body, stores, model, inner, snapshots)

            if kind == "run":
                stores[i].run(value, nested)
            elif kind == "exit":
                stores[i].exit(nested)
            else:
                with stores[i].with_scope(value):
                    nested()
            # Only this instance is restored; what the body did to the other stays.
            state[:] = inner
            state[i] = saved
        for j in (0, 1):
            assert stores[j].get_store() == model.read(state, j), (operation, j)


def test_random_programs_follow_the_model() -> None:
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(_programs())
    def check(program: Program) -> None:
        stores: list[AsyncLocalStorage[Any]] = [
            AsyncLocalStorage(name="zero", default=DEFAULTS[0]),
            AsyncLocalStorage(name="one", default=DEFAULTS[1]),
        ]
        model = _Model()
        # "No entry" is modelled as a value of a generation that never matches.
        state: list[tuple[Any, int]] = [(None, -1), (None, -1)]
        copy_context().run(_execute, program, stores, model, state, [])

    check()
