"""Processes: ProcessPoolExecutor, multiprocessing.Process and Pool, with spawn and fork.

Without help, a spawned process sees no store (a Context cannot be pickled)
and a forked one sees a stale copy of the forking thread's context, every
store included, the undeclared and the secret ones too. With the helpers,
each job sees exactly its submitter's declared stores, and nothing else.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, Crossing, create_hook
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError, StoreSerializationError
from async_hooks.propagation import (
    JSON,
    ContextExecutor,
    ProcessJob,
    carry_stores,
    run_in_executor,
    start_process,
)
from tests.conftest import RunAsync

from ._jobs import Seen, enter_all, local, report, seen, seen_then_pollute, shared

pytestmark = [
    pytest.mark.usefixtures("clean_stores"),
    # Forking while other tests' threads are alive is what these tests are about.
    pytest.mark.filterwarnings(
        "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
    ),
]

NOTHING: Seen = (None, None, "no secret")
METHODS = ["spawn", "fork"]


@pytest.fixture(params=METHODS)
def mp_context(request: pytest.FixtureRequest) -> BaseContext:
    context: BaseContext = multiprocessing.get_context(request.param)
    return context


@pytest.fixture
def one_worker(mp_context: BaseContext) -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp_context) as pool:
        yield pool


def test_pool_bare_spawn_loses_fork_keeps_a_stale_copy(
    one_worker: ProcessPoolExecutor, mp_context: BaseContext
) -> None:
    method = mp_context.get_start_method()
    enter_all("first", "first", "secret")
    at_start = one_worker.submit(seen).result()
    enter_all("second", "second", "secret 2")
    later = one_worker.submit(seen).result()
    if method == "spawn":
        assert at_start == later == NOTHING
    else:
        # The worker was forked at the first submit: every store, the secret
        # one included, frozen at that moment for every later job.
        assert at_start == later == ("first", "first", "secret")


def test_pool_bare_leaks_between_jobs(one_worker: ProcessPoolExecutor) -> None:
    one_worker.submit(seen_then_pollute, "job 1").result()
    assert one_worker.submit(seen).result() == ("job 1",) * 3


def test_pool_helper_carries_declared_stores_only(one_worker: ProcessPoolExecutor) -> None:
    pool = ContextExecutor(one_worker)
    assert pool.crossing is Crossing.PROCESSES
    enter_all("first", {"tenant": "a"}, "secret")
    at_start = pool.submit(seen_then_pollute, "job 1").result()
    enter_all("second", {"tenant": "b"}, "secret 2")
    later = pool.submit(seen_then_pollute, "job 2").result()
    # No stale copy, no value from job 1, never the secret or undeclared stores.
    assert at_start == (None, {"tenant": "a"}, "no secret")
    assert later == (None, {"tenant": "b"}, "no secret")


def test_pool_helper_map(one_worker: ProcessPoolExecutor) -> None:
    shared.enter_with("s")
    pool = ContextExecutor(one_worker)
    results = list(pool.map(seen_then_pollute, ["a", "b", "c"], chunksize=2))
    assert results == [(None, "s", "no secret")] * 3


@pytest.mark.parametrize("tracking", [False, True], ids=["untracked", "tracked"])
def test_pool_helper_behind_run_in_executor(
    one_worker: ProcessPoolExecutor, run_async: RunAsync[list[Seen]], tracking: bool
) -> None:
    # Tracked: the loop's run_in_executor wraps each job in a resource of its own.
    hook = create_hook(init=lambda *args: None)
    if tracking:
        hook.enable()
    pool = ContextExecutor(one_worker)

    async def main() -> list[Seen]:
        loop = asyncio.get_running_loop()
        enter_all("first", {"tenant": "a"}, "secret")
        first = await run_in_executor(pool, seen_then_pollute, "job 1")
        enter_all("second", {"tenant": "b"}, "secret 2")
        second = await loop.run_in_executor(pool, seen_then_pollute, "job 2")
        return [first, second]

    try:
        results = run_async(main)
    finally:
        hook.disable()
    assert results == [(None, {"tenant": "a"}, "no secret"), (None, {"tenant": "b"}, "no secret")]


def test_pool_helper_over_a_pool_helper_still_crosses_processes(
    one_worker: ProcessPoolExecutor,
) -> None:
    pool = ContextExecutor(ContextExecutor(one_worker))
    assert pool.crossing is Crossing.PROCESSES
    shared.enter_with("s")
    assert pool.submit(seen_then_pollute).result() == (None, "s", "no secret")


@pytest.mark.parametrize("crossing", [Crossing.POOLS, Crossing.THREADS])
def test_pool_helper_refuses_an_in_process_crossing_for_processes(crossing: Crossing) -> None:
    # A Context cannot be pickled: an in-process crossing could never reach the worker.
    with (
        ProcessPoolExecutor(max_workers=1) as pool,
        pytest.raises(InvalidArgValueError, match=r'"crossing".*PROCESSES'),
    ):
        ContextExecutor(pool, crossing=crossing)


def test_pool_helper_job_without_stores_runs_empty(one_worker: ProcessPoolExecutor) -> None:
    one_worker.submit(seen_then_pollute, "left behind").result()
    assert ContextExecutor(one_worker).submit(seen).result() == NOTHING


def test_process_bare(mp_context: BaseContext) -> None:
    enter_all("l", "s", "x")
    queue = mp_context.Queue()
    process = mp_context.Process(target=report, args=(queue,))  # type: ignore[attr-defined]
    process.start()
    result = queue.get(timeout=30)
    process.join()
    expected = NOTHING if mp_context.get_start_method() == "spawn" else ("l", "s", "x")
    assert result == expected


def test_start_process_carries_declared_stores(mp_context: BaseContext) -> None:
    enter_all("l", ["s", 1], "x")
    queue = mp_context.Queue()
    process = start_process(report, queue, mp_context=mp_context, name="reporter")
    result = queue.get(timeout=30)
    process.join()
    assert process.name == "reporter"
    assert process.exitcode == 0
    assert result == (None, ["s", 1], "no secret")


def test_multiprocessing_pool_with_carry_stores() -> None:
    context = multiprocessing.get_context("fork")
    shared.enter_with("s")
    with context.Pool(1) as pool:
        job = carry_stores(seen_then_pollute)
        results = [pool.apply_async(job, ("p",)).get(timeout=30) for _ in range(3)]
    assert results == [(None, "s", "no secret")] * 3


def test_unserializable_value_fails_in_the_submitter_naming_the_store() -> None:
    shared.enter_with(object())
    with pytest.raises(StoreSerializationError, match=r"'tests\.shared'"):
        carry_stores(seen)


def test_store_with_warn_policy_is_skipped_with_a_warning() -> None:
    lenient = AsyncLocalStorage[Any](
        name="test_processes.lenient",
        crosses=Crossing.PROCESSES,
        serializer=JSON,
        on_serialize_error="warn",
    )
    lenient.enter_with({1, 2})
    shared.enter_with("s")
    with pytest.warns(RuntimeWarning, match="'test_processes.lenient'"):
        job = carry_stores(seen)
    assert job.carrier == {"tests.shared": '"s"'}


def test_process_job_runs_in_an_empty_context_in_this_process_too() -> None:
    job = ProcessJob(seen_then_pollute, {"tests.shared": '"carried"'})
    local.enter_with("caller")
    assert job("x") == (None, "carried", "no secret")
    assert local.get_store() == "caller"
    assert "seen_then_pollute" in repr(job)


def test_helpers_reject_bad_arguments() -> None:
    with pytest.raises(InvalidArgTypeError, match="fn"):
        carry_stores(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match="mp_context"):
        start_process(seen, mp_context="fork")  # type: ignore[arg-type]


def test_process_executor_reports_an_unserializable_store_at_submit() -> None:
    # The error surfaces in the submitter, before anything reaches a worker.
    pool = ContextExecutor(ProcessPoolExecutor(max_workers=1))
    try:
        shared.enter_with(object())
        with pytest.raises(StoreSerializationError, match=r"'tests\.shared'"):
            pool.submit(seen)
    finally:
        pool.shutdown()
