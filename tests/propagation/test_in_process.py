"""Threads, pools, run_in_executor, to_thread and done-callbacks: one row per boundary.

Each boundary is checked three ways: what bare ``contextvars`` does (the
stores are lost, or one job's values leak into the next job of the same
worker), that the helper carries the submitter's stores (with the policy
applied: ``secret`` never crosses), and that with the helper no job sees
what an earlier job on the same worker entered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import pytest

from async_hooks import Crossing
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError
from async_hooks.propagation import (
    ContextExecutor,
    ContextThread,
    bind_callback,
    run_in_executor,
    start_thread,
    to_thread,
)
from tests.conftest import RunAsync

from ._jobs import Seen, enter_all, local, seen, seen_then_pollute, shared

pytestmark = pytest.mark.usefixtures("clean_stores")

P = ParamSpec("P")
R = TypeVar("R")

NOTHING: Seen = (None, None, "no secret")
SUBMITTER: Seen = ("l", "s", "no secret")  # what crosses of enter_all("l", "s", "x")


# -- threading.Thread -----------------------------------------------------------------


def run_thread(factory: type[threading.Thread]) -> Seen:
    results: list[Seen] = []
    thread = factory(target=lambda: results.append(seen_then_pollute()))
    thread.start()
    thread.join()
    return results[0]


def test_thread_bare_loses_the_stores() -> None:
    enter_all("l", "s", "x")
    assert run_thread(threading.Thread) == NOTHING


def test_thread_helper_carries_the_stores_and_keeps_its_own_changes() -> None:
    enter_all("l", "s", "x")
    assert run_thread(ContextThread) == SUBMITTER
    # The thread entered "polluted" in every store: none of it comes back.
    assert seen() == ("l", "s", "x")


def test_thread_captures_at_start_not_at_construction() -> None:
    results: list[Seen] = []
    thread = ContextThread(target=lambda: results.append(seen()))
    local.enter_with("at start")
    thread.start()
    thread.join()
    assert results == [("at start", None, "no secret")]


def test_thread_subclass_overriding_run_is_covered() -> None:
    results: list[Seen] = []

    class Worker(ContextThread):
        def run(self) -> None:
            results.append(seen())

    enter_all("l", "s", "x")
    worker = Worker()
    worker.start()
    worker.join()
    assert results == [SUBMITTER]
    assert "run" not in vars(worker)  # the wrapper (and the context) is released


def test_thread_with_an_explicit_context() -> None:
    import contextvars

    local.enter_with("given")
    given = contextvars.copy_context()
    local.enter_with("current")
    results: list[Seen] = []
    thread = ContextThread(target=lambda: results.append(seen()), context=given)
    thread.start()
    thread.join()
    assert results == [("given", None, "no secret")]


def test_start_thread_passes_arguments() -> None:
    results: list[Any] = []
    local.run("l", lambda: start_thread(lambda a, *, b: results.append((a, b, seen())), 1, b=2))
    for thread in threading.enumerate():
        if isinstance(thread, ContextThread):
            thread.join()
    assert results == [(1, 2, ("l", None, "no secret"))]


def test_thread_started_twice_still_raises() -> None:
    thread = start_thread(lambda: None)
    thread.join()
    with pytest.raises(RuntimeError, match="once"):
        thread.start()


def test_thread_rejects_a_context_of_the_wrong_type() -> None:
    with pytest.raises(InvalidArgTypeError, match="context"):
        ContextThread(context={})  # type: ignore[arg-type]


def test_start_thread_rejects_a_non_callable() -> None:
    with pytest.raises(InvalidArgTypeError, match="target"):
        start_thread(42)  # type: ignore[arg-type]


# -- ThreadPoolExecutor.submit / map ------------------------------------------------


def two_jobs_on_one_worker(executor: Any) -> tuple[Seen, Seen]:
    first = executor.submit(seen_then_pollute, "from job 1").result()
    second = executor.submit(seen_then_pollute, "from job 2").result()
    return first, second


def test_pool_submit_bare_loses_and_leaks() -> None:
    enter_all("l", "s", "x")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first, second = two_jobs_on_one_worker(pool)
    assert first == NOTHING
    assert second == ("from job 1",) * 3  # job 1's values, seen by job 2


def test_pool_submit_helper_carries_and_does_not_leak() -> None:
    enter_all("l", "s", "x")
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        first, second = two_jobs_on_one_worker(pool)
    assert first == SUBMITTER
    assert second == SUBMITTER


def test_pool_submit_captures_per_job_not_per_worker() -> None:
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        results = [local.run(n, pool.submit, seen).result()[0] for n in range(5)]
    assert results == [0, 1, 2, 3, 4]


def test_pool_map_bare_loses_and_leaks() -> None:
    local.enter_with("submitter")
    with ThreadPoolExecutor(max_workers=1) as pool:
        results = list(pool.map(seen_then_pollute, ["a", "b"]))
    assert results == [NOTHING, ("a",) * 3]


def test_pool_map_helper_carries_per_item() -> None:
    enter_all("l", "s", "x")
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        results = list(pool.map(seen_then_pollute, ["a", "b", "c"], timeout=10))
    assert results == [SUBMITTER] * 3


def test_pool_submit_passes_keyword_arguments_and_exceptions() -> None:
    def job(*, value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        assert pool.submit(job, value=4).result() == 8
        with pytest.raises(ValueError, match="negative"):
            pool.submit(job, value=-1).result()


class ThreadPerJobExecutor(Executor):
    """A third-party style executor: each job on a new plain thread."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()

        def work() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

        threading.Thread(target=work).start()
        return future


def test_pool_helper_wraps_any_executor() -> None:
    local.enter_with("l")
    assert ThreadPerJobExecutor().submit(seen).result() == NOTHING
    executor = ContextExecutor(ThreadPerJobExecutor())
    assert executor.submit(seen).result() == ("l", None, "no secret")
    assert executor.crossing is Crossing.POOLS
    assert isinstance(executor.executor, ThreadPerJobExecutor)


def test_pool_helper_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidArgTypeError, match="executor"):
        ContextExecutor(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgValueError, match="crossing"):
        ContextExecutor(ThreadPoolExecutor(max_workers=1), crossing=Crossing.REMOTE)
    with (
        ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool,
        pytest.raises(InvalidArgTypeError, match="fn"),
    ):
        pool.submit(42)  # type: ignore[arg-type]


def test_pool_job_exception_keeps_the_submitter_context_clean() -> None:
    def failing() -> None:
        local.enter_with("set by a failing job")
        raise RuntimeError("boom")

    local.enter_with("submitter")
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        with pytest.raises(RuntimeError, match="boom"):
            pool.submit(failing).result()
        assert pool.submit(seen).result()[0] == "submitter"
    assert local.get_store() == "submitter"


# -- done-callbacks ---------------------------------------------------------------


def callback_sees(bind: bool) -> Seen:
    gate = threading.Event()
    results: list[Seen] = []

    def callback(_: Future[bool]) -> None:
        results.append(seen())

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(gate.wait)
        future.add_done_callback(bind_callback(callback) if bind else callback)
        gate.set()
    return results[0]


def test_done_callback_bare_runs_in_the_completing_thread() -> None:
    enter_all("l", "s", "x")
    assert callback_sees(bind=False) == NOTHING


def test_done_callback_helper_runs_in_the_adding_context() -> None:
    enter_all("l", "s", "x")
    assert callback_sees(bind=True) == SUBMITTER


def test_bound_callback_calls_do_not_share_changes() -> None:
    local.enter_with("l")
    bound = bind_callback(seen_then_pollute)
    assert bound() == ("l", None, "no secret")
    assert bound() == ("l", None, "no secret")
    assert bound.__wrapped__ is seen_then_pollute  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgTypeError, match="fn"):
        bind_callback(None)  # type: ignore[arg-type]


# -- loop.run_in_executor and asyncio.to_thread (stdlib loop and uvloop) -----------


def test_run_in_executor_bare_loses_and_leaks(run_async: RunAsync[Any]) -> None:
    async def main() -> tuple[Seen, Seen]:
        loop = asyncio.get_running_loop()
        enter_all("l", "s", "x")
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = await loop.run_in_executor(pool, seen_then_pollute, "job 1")
            second = await loop.run_in_executor(pool, seen_then_pollute, "job 2")
        return first, second

    assert run_async(main) == (NOTHING, ("job 1",) * 3)


@pytest.mark.parametrize("executor_kind", ["default", "explicit", "wrapped"])
def test_run_in_executor_helper_carries_and_does_not_leak(
    run_async: RunAsync[Any], executor_kind: str
) -> None:
    async def main() -> list[Seen]:
        loop = asyncio.get_running_loop()
        enter_all("l", "s", "x")
        results = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            for marker in ("job 1", "job 2"):
                if executor_kind == "default":
                    results.append(await run_in_executor(None, seen_then_pollute, marker))
                elif executor_kind == "explicit":
                    results.append(await run_in_executor(pool, seen_then_pollute, marker))
                else:
                    wrapped = ContextExecutor(pool)
                    results.append(await loop.run_in_executor(wrapped, seen_then_pollute, marker))
        return results

    assert run_async(main) == [SUBMITTER, SUBMITTER]


def test_run_in_executor_sees_each_task_own_stores(run_async: RunAsync[Any]) -> None:
    async def request(n: int) -> Any:
        local.enter_with(n)
        await asyncio.sleep(0)
        return (await run_in_executor(None, seen))[0]

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(request(n) for n in range(20))))

    assert run_async(main) == list(range(20))


def test_to_thread_bare_carries_but_ignores_the_policy(run_async: RunAsync[Any]) -> None:
    async def main() -> Seen:
        enter_all("l", "s", "x")
        return await asyncio.to_thread(seen)

    # asyncio.to_thread copies the whole context: even a store declared
    # crosses=Crossing.NONE reaches the thread.
    assert run_async(main) == ("l", "s", "x")


def test_to_thread_helper_applies_the_policy(run_async: RunAsync[Any]) -> None:
    async def main() -> tuple[Seen, Seen]:
        enter_all("l", "s", "x")
        first = await to_thread(seen_then_pollute, "job 1")
        return first, await to_thread(seen_then_pollute, marker="job 2")

    assert run_async(main) == (SUBMITTER, SUBMITTER)


def test_shared_store_value_is_the_same_object_in_process() -> None:
    value = {"request": 1}
    shared.enter_with(value)
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        assert pool.submit(shared.get_store).result() is value


def test_thread_keeps_a_patch_another_library_put_on_thread_start() -> None:
    original = vars(threading.Thread)["start"]
    started: list[str] = []

    def tracking_start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    threading.Thread.start = tracking_start  # type: ignore[method-assign]
    try:
        local.enter_with("l")
        thread = start_thread(lambda: None, name="tracked")
        thread.join()
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert started == ["tracked"]
