"""install()/uninstall(): context carried by code that does not use the helpers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from async_hooks.propagation import ContextExecutor, ContextThread, install, installed, uninstall
from tests.conftest import RunAsync

from ._jobs import Seen, enter_all, local, seen, seen_then_pollute

pytestmark = pytest.mark.usefixtures("clean_stores")

NOTHING: Seen = (None, None, "no secret")
SUBMITTER: Seen = ("l", "s", "no secret")


def patched_attributes() -> dict[str, Any]:
    return {
        "Thread.start": vars(threading.Thread)["start"],
        "ThreadPoolExecutor.submit": vars(ThreadPoolExecutor)["submit"],
        "ProcessPoolExecutor.submit": vars(ProcessPoolExecutor)["submit"],
        "Future.add_done_callback": vars(concurrent.futures.Future)["add_done_callback"],
        "asyncio.to_thread": asyncio.to_thread,
    }


@pytest.fixture
def installed_propagation() -> Iterator[None]:
    install()
    try:
        yield
    finally:
        uninstall()


def in_plain_thread(fn: Callable[[], Seen]) -> Seen:
    results: list[Seen] = []
    thread = threading.Thread(target=lambda: results.append(fn()))
    thread.start()
    thread.join()
    return results[0]


@pytest.mark.no_hooks
def test_install_is_idempotent_and_uninstall_restores_the_very_objects() -> None:
    originals = patched_attributes()
    assert not installed()
    install()
    try:
        assert installed()
        replaced = patched_attributes()
        assert all(replaced[name] is not originals[name] for name in originals)
        install()
        assert patched_attributes() == replaced
    finally:
        uninstall()
    assert not installed()
    after = patched_attributes()
    assert all(after[name] is originals[name] for name in originals)
    uninstall()
    assert all(patched_attributes()[name] is originals[name] for name in originals)


def test_uninstall_brings_back_bare_behaviour() -> None:
    enter_all("l", "s", "x")
    install()
    assert in_plain_thread(seen) == SUBMITTER
    uninstall()
    assert in_plain_thread(seen) == NOTHING


@pytest.mark.usefixtures("installed_propagation")
def test_plain_threads_and_timers_carry_the_stores() -> None:
    enter_all("l", "s", "x")
    assert in_plain_thread(seen_then_pollute) == SUBMITTER
    assert seen() == ("l", "s", "x")
    results: list[Seen] = []
    timer = threading.Timer(0, lambda: results.append(seen()))
    timer.start()
    timer.join()
    assert results == [SUBMITTER]


@pytest.mark.usefixtures("installed_propagation")
def test_context_thread_is_not_wrapped_twice() -> None:
    enter_all("l", "s", "x")
    results: list[Seen] = []
    thread = ContextThread(target=lambda: results.append(seen()))
    thread.start()
    thread.join()
    assert results == [SUBMITTER]


@pytest.mark.usefixtures("installed_propagation")
def test_thread_pool_submit_and_map_carry_per_job_without_leaks() -> None:
    enter_all("l", "s", "x")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(seen_then_pollute, "job 1").result()
        second = pool.submit(seen_then_pollute, "job 2").result()
        mapped = list(pool.map(seen_then_pollute, ["a", "b"]))
        per_job = [local.run(n, pool.submit, seen).result()[0] for n in range(3)]
    assert first == second == SUBMITTER
    assert mapped == [SUBMITTER, SUBMITTER]
    assert per_job == [0, 1, 2]


@pytest.mark.usefixtures("installed_propagation")
def test_pool_workers_start_empty() -> None:
    # A worker serves every submitter: it must not keep the stores of the
    # one whose submit happened to start it (its initializer shows them).
    initialized: list[Seen] = []
    enter_all("l", "s", "x")
    with ThreadPoolExecutor(max_workers=1, initializer=lambda: initialized.append(seen())) as pool:
        assert pool.submit(seen).result() == SUBMITTER
    assert initialized == [NOTHING]


@pytest.mark.usefixtures("installed_propagation")
def test_done_callbacks_run_in_the_adding_context() -> None:
    enter_all("l", "s", "x")
    gate = threading.Event()
    results: list[Seen] = []

    def callback(_: Future[bool]) -> None:
        results.append(seen())

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(gate.wait)
        future.add_done_callback(callback)
        gate.set()
    assert results == [SUBMITTER]


@pytest.mark.usefixtures("installed_propagation")
def test_run_in_executor_and_to_thread(run_async: RunAsync[Any]) -> None:
    async def main() -> list[Seen]:
        loop = asyncio.get_running_loop()
        enter_all("l", "s", "x")
        with ThreadPoolExecutor(max_workers=1) as pool:
            return [
                await loop.run_in_executor(None, seen_then_pollute, "default 1"),
                await loop.run_in_executor(None, seen_then_pollute, "default 2"),
                await loop.run_in_executor(pool, seen_then_pollute, "explicit 1"),
                await loop.run_in_executor(pool, seen_then_pollute, "explicit 2"),
                await asyncio.to_thread(seen_then_pollute, "to_thread"),
            ]

    assert run_async(main) == [SUBMITTER] * 5


@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
@pytest.mark.parametrize("method", ["spawn", "fork"])
@pytest.mark.usefixtures("installed_propagation")
def test_process_pool_carries_declared_stores(method: str) -> None:
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        enter_all("l", "s", "x")
        first = pool.submit(seen_then_pollute, "job 1").result()
        enter_all("l", "s2", "x")
        second = pool.submit(seen_then_pollute, "job 2").result()
    assert first == (None, "s", "no secret")
    assert second == (None, "s2", "no secret")


def test_uninstall_leaves_a_later_wrapper_in_place_and_goes_inert() -> None:
    original = vars(threading.Thread)["start"]
    install()
    ours = vars(threading.Thread)["start"]
    calls: list[str] = []

    def someone_elses(self: threading.Thread) -> None:
        calls.append(self.name)
        ours(self)

    threading.Thread.start = someone_elses  # type: ignore[method-assign]
    try:
        uninstall()
        assert vars(threading.Thread)["start"] is someone_elses
        local.enter_with("l")
        assert in_plain_thread(seen) == NOTHING  # our wrapper passes through
        assert len(calls) == 1
    finally:
        # They uninstall themselves by putting back what they found: ours,
        # which the next install() takes back and the next uninstall() undoes.
        threading.Thread.start = ours  # type: ignore[method-assign]
    install()
    uninstall()
    assert vars(threading.Thread)["start"] is original


@pytest.mark.usefixtures("installed_propagation")
def test_helpers_still_work_under_install() -> None:
    enter_all("l", "s", "x")
    with ContextExecutor(ThreadPoolExecutor(max_workers=1)) as pool:
        assert pool.submit(seen_then_pollute).result() == SUBMITTER
        assert pool.submit(seen).result() == SUBMITTER
    context = multiprocessing.get_context("spawn")
    with ContextExecutor(ProcessPoolExecutor(max_workers=1, mp_context=context)) as processes:
        assert processes.submit(seen).result() == (None, "s", "no secret")
