"""get_active_resources_info() and the richer get_active_resources(), with and without hooks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from async_hooks import (
    AsyncLocalStorage,
    execution_async_id,
    get_active_resources_info,
)
from async_hooks.diagnostics import get_active_resources

from .conftest import Recorder, RunAsync


@pytest.mark.no_hooks
def test_info_without_hooks_lists_tasks_and_non_daemon_threads(
    run_async: RunAsync, loop_name: str
) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:

        async def main() -> list[str]:
            loop = asyncio.get_running_loop()
            sleeper = asyncio.create_task(asyncio.sleep(10))
            timer = loop.call_later(10, print)
            try:
                return get_active_resources_info()
            finally:
                sleeper.cancel()
                timer.cancel()

        info = run_async(main)
    finally:
        release.set()
        worker.join()
    # main's task and the sleeper; the worker thread.
    assert info.count("Task") == 2
    assert info.count("Thread") == 1
    # The stdlib loop's queues can be read; uvloop's only with tracking on.
    assert info.count("TimerHandle") == (1 if loop_name == "asyncio" else 0)


def test_info_with_hooks_lists_tracked_handles_on_both_loops(
    run_async: RunAsync, recorder: Recorder
) -> None:
    async def main() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        sleeper = asyncio.create_task(asyncio.sleep(10))
        timer = loop.call_later(10, print)
        soon = loop.call_soon(print)
        future = loop.create_future()
        busy = get_active_resources_info()
        sleeper.cancel()
        timer.cancel()
        soon.cancel()
        future.cancel()
        await asyncio.sleep(0)
        return busy, get_active_resources_info()

    busy, after = run_async(main)
    assert busy.count("TimerHandle") == 1
    assert busy.count("Handle") == 1
    assert "Future" not in busy  # promises do not keep a program busy, as in Node
    assert busy.count("Task") == 2  # main (untracked: it existed first) and the sleeper
    assert "TimerHandle" not in after
    assert after.count("Task") == 1


@pytest.mark.usefixtures("creation_sites")
def test_rich_view_of_a_tracked_task(run_async: RunAsync, recorder: Recorder) -> None:
    request = AsyncLocalStorage[str](name="request")
    other = AsyncLocalStorage[str](name="other")

    async def main() -> None:
        creator = execution_async_id()
        started = asyncio.Event()

        async def handler() -> None:
            started.set()
            await asyncio.sleep(10)

        task = request.run("req-1", asyncio.create_task, handler())
        await started.wait()
        await asyncio.sleep(0.01)
        (view,) = [active for active in get_active_resources() if active.resource is task]
        assert view.type == "Task"
        assert view.async_id == recorder.id_of(task)
        assert view.trigger_async_id == creator
        assert view.age is not None
        assert 0 < view.age < 10
        assert view.creation_site is not None
        assert view.creation_site.filename == __file__
        assert view.creation_site.function == "main"
        assert view.stores == {request: "req-1"}
        assert view.stores_by_name() == {"request": "req-1"}
        assert other not in view.stores
        assert view.keeps_busy
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run_async(main)


@pytest.mark.no_hooks
def test_untracked_view_has_no_ids(run_async: RunAsync) -> None:
    async def main() -> None:
        current = asyncio.current_task()
        (view,) = [active for active in get_active_resources() if active.resource is current]
        assert view.type == "Task"
        assert view.async_id is None
        assert view.trigger_async_id is None
        assert view.age is None
        assert view.creation_site is None

    run_async(main)


def test_creation_sites_are_recorded_only_when_asked(
    run_async: RunAsync, recorder: Recorder
) -> None:
    from async_hooks.lowlevel import record_creation_sites

    sites: dict[bool, object] = {}

    async def main() -> None:
        for on in (False, True):
            record_creation_sites(on)
            try:
                task = asyncio.create_task(asyncio.sleep(0))
                (view,) = [view for view in get_active_resources() if view.resource is task]
                sites[on] = view.creation_site
                await task
            finally:
                record_creation_sites(False)

    run_async(main)
    assert sites[False] is None
    assert getattr(sites[True], "function", None) == "main"


def test_record_creation_sites_takes_a_bool() -> None:
    from async_hooks.errors import InvalidArgTypeError
    from async_hooks.lowlevel import record_creation_sites

    with pytest.raises(InvalidArgTypeError, match='"on" argument must be of type bool'):
        record_creation_sites(1)  # type: ignore[arg-type]
