"""Unhandled errors: which context an event loop reports them in, with and without the fix."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from async_hooks import AsyncLocalStorage
from async_hooks.errors import InvalidArgTypeError
from async_hooks.propagation._unhandled import (
    failure_context,
    in_failure_context,
    install_exception_context,
    with_exception_context,
)

# The signature of the `run_async` fixture of conftest.py.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")


class StoreRecorder(logging.Handler):
    """Records each log line of the asyncio logger with the request store seen while logging."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage().splitlines()[0], request.get_store()))


@pytest.fixture
def asyncio_log() -> Iterator[StoreRecorder]:
    recorder = StoreRecorder()
    logger = logging.getLogger("asyncio")
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)


def failing_callback() -> None:
    request.enter_with(f"{request.get_store()}, then the callback")
    raise ValueError("callback failed")


async def failing_task() -> None:
    request.enter_with("task")
    raise ValueError("task failed")


async def fail_and_collect_task(label: str = "task") -> None:
    """Let a task fail with nobody retrieving its exception, then drop it under "collector"."""

    async def fail() -> None:
        request.enter_with(label)
        raise ValueError(f"{label} failed")

    holder = [asyncio.create_task(fail())]
    while not holder[0].done():
        await asyncio.sleep(0)
    request.run("collector", holder.clear)
    gc.collect()


async def fail_in_callback() -> None:
    loop = asyncio.get_running_loop()
    request.run("callback", loop.call_soon, failing_callback)
    for _ in range(3):
        await asyncio.sleep(0)


# -- what the loops do on their own ----------------------------------------------


def test_bare_callback_error_is_logged_outside_the_callbacks_context_on_asyncio(
    run_async: RunAsync, loop_name: str, asyncio_log: StoreRecorder
) -> None:
    async def main() -> None:
        request.enter_with("loop")
        await fail_in_callback()

    run_async(main)
    message, store = asyncio_log.seen[0]
    assert message.startswith("Exception in callback")
    # uvloop reports from inside the callback's context; the stdlib loop from
    # outside it, in the context that runs the loop.
    expected = "callback, then the callback" if loop_name == "uvloop" else None
    assert store == expected


def test_bare_task_error_is_logged_in_the_collectors_context(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    run_async(fail_and_collect_task)
    assert asyncio_log.seen == [("Task exception was never retrieved", "collector")]


def test_bare_users_handler_context_depends_on_loop_and_version(
    run_async: RunAsync, loop_name: str
) -> None:
    seen: list[str | None] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: seen.append(request.get_store())
        )
        await fail_in_callback()
        await fail_and_collect_task()

    run_async(main)
    # Since 3.12 the stdlib loop runs a user's handler in the failing work's
    # context (Task/Handle.get_context); uvloop does so for callbacks only.
    stdlib_312 = loop_name == "asyncio" and sys.version_info >= (3, 12)
    callback_inside = stdlib_312 or loop_name == "uvloop"
    assert seen == [
        "callback, then the callback" if callback_inside else None,
        "task" if stdlib_312 else "collector",
    ]


# -- with install_exception_context ------------------------------------------------


def test_installed_callback_error_is_logged_in_the_callbacks_context(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    async def main() -> None:
        with install_exception_context():
            await fail_in_callback()

    run_async(main)
    message, store = asyncio_log.seen[0]
    assert message.startswith("Exception in callback")
    assert store == "callback, then the callback"


def test_installed_task_error_is_logged_in_the_tasks_context(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    async def main() -> None:
        with install_exception_context():
            await fail_and_collect_task()

    run_async(main)
    assert asyncio_log.seen == [("Task exception was never retrieved", "task")]


def test_consecutive_failures_each_report_their_own_store(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    async def main() -> None:
        with install_exception_context():
            await fail_and_collect_task("first")
            await fail_and_collect_task("second")
        assert request.get_store() is None

    run_async(main)
    assert [store for _, store in asyncio_log.seen] == ["first", "second"]


def test_the_users_handler_is_chained_and_restored(run_async: RunAsync) -> None:
    seen: list[tuple[str, str | None]] = []

    def users_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append((context["message"], request.get_store()))
        request.enter_with("entered by the handler")  # must not reach the next failure

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(users_handler)
        installation = install_exception_context(loop)
        assert installation.installed
        assert loop.get_exception_handler() is not users_handler
        await fail_and_collect_task("first")
        await fail_and_collect_task("second")
        installation.uninstall()
        installation.uninstall()  # a second call does nothing
        assert not installation.installed
        assert loop.get_exception_handler() is users_handler

    run_async(main)
    assert seen == [
        ("Task exception was never retrieved", "first"),
        ("Task exception was never retrieved", "second"),
    ]


def test_uninstall_under_a_later_handler_leaves_a_pass_through(run_async: RunAsync) -> None:
    seen: list[str | None] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: seen.append(request.get_store()))
        await fail_and_collect_task()  # what the loop does on its own, for comparison
        installation = install_exception_context(loop)
        ours = loop.get_exception_handler()
        assert ours is not None

        def later_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            ours(loop, context)  # someone chained on top of us

        loop.set_exception_handler(later_handler)
        installation.uninstall()
        assert loop.get_exception_handler() is later_handler
        await fail_and_collect_task()

    run_async(main)
    # Still delivered through the chain, in the context the loop chose, as if never installed.
    assert len(seen) == 2
    assert seen[1] == seen[0]


def test_a_failing_handler_is_reported_and_later_work_is_unaffected(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    def broken_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        raise RuntimeError("the handler itself failed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(broken_handler)
        request.enter_with("main")
        with install_exception_context():
            await fail_and_collect_task()
            assert request.get_store() == "main"
            assert await asyncio.create_task(asyncio.sleep(0, "fine")) == "fine"

    run_async(main)
    assert [message for message, _ in asyncio_log.seen] == ["Unhandled error in exception handler"]


def test_a_task_factory_in_place_is_chained_and_restored(
    run_async: RunAsync, asyncio_log: StoreRecorder
) -> None:
    created: list[str] = []

    def users_factory(
        loop: asyncio.AbstractEventLoop,
        coro: Any,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        created.append(getattr(coro, "__name__", "?"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(users_factory)
        with install_exception_context(loop):
            await fail_and_collect_task()
        assert loop.get_task_factory() is users_factory
        loop.set_task_factory(None)

    run_async(main)
    assert "fail" in created
    assert asyncio_log.seen == [("Task exception was never retrieved", "task")]


def test_a_two_argument_task_factory_keeps_working(asyncio_log: StoreRecorder) -> None:
    # The stdlib loop calls a factory with context= only when create_task got
    # one; a factory written for (loop, coro) must go on being called that
    # way. (uvloop always passes context=, so there no such factory works.)
    created: list[str] = []

    def users_factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        created.append(getattr(coro, "__name__", "?"))
        return asyncio.Task(coro, loop=loop)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(users_factory)
        try:
            with install_exception_context(loop):
                await request.run("creator", fail_and_collect_task)
        finally:
            loop.set_task_factory(None)

    asyncio.run(main())
    assert "fail" in created
    # 3.11 shows no task's context: with such a factory, the handler sees the
    # stores as they were when the task was created.
    expected = "creator" if sys.version_info < (3, 12) else "task"
    assert asyncio_log.seen == [("Task exception was never retrieved", expected)]


def test_in_failure_context_wraps_one_handler(run_async: RunAsync) -> None:
    seen: list[str | None] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            in_failure_context(lambda loop, context: seen.append(request.get_store()))
        )
        await fail_and_collect_task()
        await fail_in_callback()
        loop.set_exception_handler(None)

    run_async(main)
    if sys.version_info < (3, 12):
        # Without install_exception_context nobody recorded the task's context.
        assert seen[1] == "callback, then the callback"
    else:
        assert seen == ["task", "callback, then the callback"]


def test_failure_context_finds_nothing_for_a_bare_future(run_async: RunAsync) -> None:
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        assert failure_context({"message": "m", "future": future}) is None
        assert failure_context({"message": "m"}) is None
        future.cancel()

    run_async(main)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidArgTypeError, match='"context" argument must be a mapping'):
        failure_context(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"loop" argument must be an asyncio event loop'):
        install_exception_context("loop")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"handler" argument must be callable'):
        in_failure_context(None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no running event loop"):
        install_exception_context()


def test_with_exception_context_installs_on_every_new_loop(
    loop_name: str, asyncio_log: StoreRecorder
) -> None:
    base = uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop

    async def main() -> None:
        assert asyncio.get_running_loop().get_exception_handler() is not None
        await fail_and_collect_task()
        await fail_in_callback()

    for _ in range(2):
        with asyncio.Runner(loop_factory=with_exception_context(base)) as runner:
            runner.run(main())
    assert [store for _, store in asyncio_log.seen] == ["task", "callback, then the callback"] * 2
    with pytest.raises(InvalidArgTypeError, match='"loop_factory" argument must be callable'):
        with_exception_context("uvloop")  # type: ignore[arg-type]
