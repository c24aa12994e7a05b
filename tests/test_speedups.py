"""The hot path's edge cases, where a compiled implementation could differ from Python.

Every test here runs on whichever path is active, and scripts/test runs the
suite on both: the compiled ``async_hooks._speedups`` and the pure-Python
fallback must give the same answers (docs/accelerator.md).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import sys
import traceback
import tracemalloc
from collections.abc import Callable, Coroutine, Generator
from contextvars import copy_context
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, AsyncResource, create_hook, execution_async_id
from async_hooks.errors import InvalidArgTypeError

Caller = Callable[..., Any]


def _callers() -> dict[str, Caller]:
    """Each API that calls a function, as ``call(fn, *args, **kwargs)``."""
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = AsyncResource("Edge")
    runner = AsyncLocalStorage.snapshot()

    def bound(fn: Caller, /, *args: Any, **kwargs: Any) -> Any:
        return AsyncLocalStorage.bind(fn)(*args, **kwargs)

    return {
        "run": lambda fn, /, *a, **k: als.run("store", fn, *a, **k),
        "exit": als.exit,
        "snapshot": runner,
        "run_in_async_scope": resource.run_in_async_scope,
        "bind": bound,
    }


CALLERS = sorted(_callers())


@pytest.fixture(params=CALLERS)
def call(request: pytest.FixtureRequest) -> Caller:
    return _callers()[request.param]


def _raise_value_error() -> None:
    raise ValueError("from fn")


def test_exceptions_propagate_unchanged_with_fn_s_frame_in_the_traceback(call: Caller) -> None:
    with pytest.raises(ValueError, match="from fn") as caught:
        call(_raise_value_error)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None
    assert traceback.extract_tb(error.__traceback__)[-1].name == "_raise_value_error"


def test_keyword_arguments_reach_fn_whatever_their_names(call: Caller) -> None:
    def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    assert call(echo, 1, 2, fn="f", store="s", self="x") == (
        (1, 2),
        {"fn": "f", "store": "s", "self": "x"},
    )
    assert call(echo) == ((), {})


@pytest.mark.parametrize("name", ["run", "exit", "snapshot", "run_in_async_scope"])
def test_a_non_callable_fn_is_err_invalid_arg_type_from_none(name: str) -> None:
    call = _callers()[name]
    try:
        raise KeyError("being handled")
    except KeyError:
        # Raised while another exception is handled: the replaced TypeError
        # is the new error's (suppressed) context, not the handled one.
        with pytest.raises(InvalidArgTypeError) as caught:
            call(3)
    error = caught.value
    assert error.code == "ERR_INVALID_ARG_TYPE"
    assert str(error) == 'The "fn" argument must be callable. Received type int (3)'
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert isinstance(error.__context__, TypeError)


def test_a_missing_fn_is_a_type_error() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = AsyncLocalStorage.snapshot()
    resource = AsyncResource("Edge")
    calls: list[Callable[[], Any]] = [
        lambda: als.run("store"),  # type: ignore[call-overload]  # the error tested
        als.exit,  # type: ignore[list-item]  # the error tested
        runner,  # type: ignore[list-item]
        resource.run_in_async_scope,  # type: ignore[list-item]
    ]
    for call in calls:
        with pytest.raises(TypeError, match="missing"):
            call()


class _ForeignCoroutine(Coroutine[Any, Any, str]):
    """A coroutine that is not an ``async def`` one (as Cython's are)."""

    def send(self, value: object) -> Any:
        raise StopIteration("foreign")

    def throw(self, *args: Any) -> Any:
        raise StopIteration("foreign")

    def close(self) -> None:
        return None

    def __await__(self) -> Generator[Any, None, str]:
        yield from ()
        return "foreign"


@pytest.mark.parametrize("make", ["native", "foreign"])
def test_every_api_wraps_a_returned_coroutine(call: Caller, make: str) -> None:
    async def native() -> str:
        return "native"

    coroutine = native() if make == "native" else _ForeignCoroutine()
    result = call(lambda: coroutine)
    assert result is not coroutine
    assert result.__wrapped__ is coroutine
    with pytest.raises(StopIteration) as stopped:
        result.send(None)
    assert stopped.value.value == make


def test_a_result_that_is_not_a_coroutine_is_returned_as_it_is(call: Caller) -> None:
    marker = object()
    assert call(lambda: marker) is marker
    assert call(lambda: None) is None


def test_a_saved_get_store_sees_runs_and_enter_with_after_disable() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="default")

    def program() -> None:
        get_store = als.get_store
        als.enter_with("before")
        als.disable()
        assert get_store() == "default"
        assert als.run("inside", get_store) == "inside"
        als.enter_with("after")
        assert get_store() == "after"

    copy_context().run(program)


def test_a_subclass_that_skips_init_fails_clearly() -> None:
    class Broken(AsyncLocalStorage[str]):
        def __init__(self) -> None:
            pass

    with pytest.raises(AttributeError):
        Broken().get_store()


def test_bound_functions_bind_as_methods_in_a_class_body() -> None:
    def method(self: object, value: int) -> tuple[object, int]:
        return self, value

    class Holder:
        bound = AsyncLocalStorage.bind(method)

    holder = Holder()
    assert holder.bound(1) == (holder, 1)
    assert Holder.bound(holder, 2) == (holder, 2)


def test_resource_construction_takes_keywords_and_runs_for_subclasses() -> None:
    class Query(AsyncResource):
        def __init__(self, sql: str) -> None:
            super().__init__(type="Query", trigger_async_id=7, require_manual_destroy=True)
            self.sql = sql

    query = Query("select 1")
    assert (query.type, query.trigger_async_id(), query.sql) == ("Query", 7, "select 1")
    assert query.run_in_async_scope(execution_async_id) == query.async_id()
    with pytest.raises(TypeError):
        AsyncResource()  # type: ignore[call-arg]  # the error tested
    with pytest.raises(TypeError):
        AsyncResource("Edge", 1, True)  # type: ignore[call-arg]  # keyword-only, tested


def test_resource_construction_has_its_signature() -> None:
    parameters = inspect.signature(AsyncResource).parameters.values()
    assert [(p.name, p.kind, p.default) for p in parameters] == [
        ("type", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("trigger_async_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("require_manual_destroy", inspect.Parameter.KEYWORD_ONLY, False),
    ]


def test_resource_construction_keeps_no_reference_to_its_arguments() -> None:
    name = "".join(["Edge", "Type"])  # a str of its own, not an interned constant
    trigger = 10**20  # an int of its own
    before = sys.getrefcount(name), sys.getrefcount(trigger)
    for _ in range(1000):
        AsyncResource(name, trigger)
    gc.collect()
    assert (sys.getrefcount(name), sys.getrefcount(trigger)) == before


# -- hooks around bound calls ---------------------------------------------------


def test_before_and_after_surround_bound_calls_also_when_fn_raises() -> None:
    events: list[tuple[str, int]] = []
    hook = create_hook(
        before=lambda i: events.append(("before", i)),
        after=lambda i: events.append(("after", i)),
    )
    resource = AsyncResource("Scope")
    bound = resource.bind(execution_async_id)
    failing = resource.bind(_raise_value_error)
    hook.enable()
    try:
        assert bound() == resource.async_id()
        with pytest.raises(ValueError, match="from fn"):
            failing()
    finally:
        hook.disable()
    assert bound() == resource.async_id()
    ids = resource.async_id()
    assert events == [("before", ids), ("after", ids), ("before", ids), ("after", ids)]


def test_an_after_hook_that_interrupts_is_chained_to_fn_s_error() -> None:
    def interrupt(async_id: int) -> None:
        raise KeyboardInterrupt

    resource = AsyncResource("Scope")
    hook = create_hook(after=interrupt).enable()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            resource.run_in_async_scope(_raise_value_error)
    finally:
        hook.disable()
    assert isinstance(caught.value.__context__, ValueError)


# -- references -------------------------------------------------------------------


class _Tracked:
    pass


@pytest.mark.parametrize("raises", [False, True], ids=["returns", "raises"])
def test_calls_keep_no_reference_to_their_arguments(call: Caller, raises: bool) -> None:
    store, argument, keyword = _Tracked(), _Tracked(), _Tracked()

    def fn(a: object, *, k: object) -> object:
        if raises:
            raise ValueError("from fn")
        return None

    counted = (store, argument, keyword, fn)
    before = [sys.getrefcount(obj) for obj in counted]
    for _ in range(1000):
        with contextlib.suppress(ValueError):
            call(fn, argument, k=keyword)
    gc.collect()
    assert [sys.getrefcount(obj) for obj in counted] == before


class _Borrower:
    """Its bound method, called with room before its arguments, borrows that slot for self."""

    def __init__(self, arguments: tuple[Any, ...]) -> None:
        self.arguments = arguments
        self.seen: list[list[Any]] = []

    def method(self, *args: Any) -> None:
        self.seen.append(list(self.arguments))  # the caller's tuple, while fn runs
        gc.collect()  # the collector walks that tuple too


@pytest.mark.parametrize("name", CALLERS)
def test_the_callers_argument_tuple_is_untouched_while_fn_runs(name: str) -> None:
    # A call through a tuple (f(*args)) hands over the tuple's own items; the
    # slot before the first is the tuple's length, and a callee told it may
    # borrow it (the vectorcall offset flag) wrote a pointer there: len()
    # went wrong and the cyclic collector crashed walking the tuple.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = AsyncResource("Edge")
    borrower = _Borrower(())
    method = borrower.method
    arguments: tuple[Any, ...] = {
        "run": ("store", method, 1, 2),
        "exit": (method, 1, 2),
        "snapshot": (method, 1, 2),
        "run_in_async_scope": (method, 1, 2),
        "bind": (1, 2),
    }[name]
    borrower.arguments = arguments
    callers: dict[str, Caller] = {
        "run": als.run,
        "exit": als.exit,
        "snapshot": AsyncLocalStorage.snapshot(),
        "run_in_async_scope": resource.run_in_async_scope,
        "bind": AsyncLocalStorage.bind(method),
    }
    caller = callers[name]
    for _ in range(3):
        caller(*arguments)
    assert borrower.seen == [list(arguments)] * 3


# An enabled EventChecker (--check-events) keeps every id it saw: a million
# resources are a million ids.
@pytest.mark.no_hooks
def test_a_million_calls_do_not_grow_memory() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    runner = AsyncLocalStorage.snapshot()
    resource = AsyncResource("Edge")
    bound = AsyncLocalStorage.bind(als.get_store)

    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    def loop(count: int) -> None:
        for index in range(count):
            als.run(index, noop, index, k=index)
            als.exit(noop)
            als.enter_with(index)
            als.get_store()
            runner(noop, index)
            resource.run_in_async_scope(noop, k=index)
            bound()
            AsyncResource("Edge").run_in_async_scope(noop)

    def program() -> int:
        loop(10_000)  # warm every cache first
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            loop(125_000)  # eight calls an iteration: a million calls
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()

    assert copy_context().run(program) < 64 * 1024
