"""Lifecycle events of asyncio's resources, on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import operator
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from contextvars import copy_context
from typing import Any

import pytest

from async_hooks import (
    AsyncLocalStorage,
    execution_async_id,
    execution_async_resource,
    trigger_async_id,
)
from async_hooks.lowlevel import flush_pending_destroys

from .conftest import Recorder, RunAsync, check_invariants


def test_task_gets_init_steps_resolve_and_destroy(run_async: RunAsync, recorder: Recorder) -> None:
    seen: dict[str, object] = {}

    async def child() -> int:
        seen["ids"] = (execution_async_id(), trigger_async_id())
        seen["resource"] = execution_async_resource()
        await asyncio.sleep(0)
        seen["after_await"] = execution_async_id()
        return 7

    async def main() -> None:
        seen["creator"] = execution_async_id()
        task = asyncio.create_task(child())
        seen["task"] = task
        assert await task == 7

    run_async(main)
    task = seen["task"]
    task_id = recorder.id_of(task)
    init = recorder.inits[task_id]
    assert init.type == "Task"
    assert init.trigger_async_id == seen["creator"]
    assert seen["ids"] == (task_id, seen["creator"])
    assert seen["after_await"] == task_id
    assert seen["resource"] is task
    assert recorder.of(task_id) == [
        "init",
        "before",
        "after",
        "before",
        "promise_resolve",
        "after",
        "destroy",
    ]
    check_invariants(recorder.events)


def test_every_way_of_creating_a_task_is_tracked(run_async: RunAsync, recorder: Recorder) -> None:
    made: list[object] = []

    async def leaf() -> int:
        made.append(asyncio.current_task())
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.ensure_future(leaf())
        await asyncio.gather(leaf(), leaf())
        async with asyncio.TaskGroup() as group:
            group.create_task(leaf())
        await loop.create_task(leaf())

    run_async(main)
    assert len(made) == 5
    for task in made:
        task_id = recorder.id_of(task)
        assert recorder.inits[task_id].type == "Task"
        assert recorder.of(task_id)[-1] == "destroy"
    check_invariants(recorder.events)


def test_future_resolution_is_reported_inside_the_resolving_step(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        handle = loop.call_soon(future.set_result, "done")
        seen["future"], seen["handle"] = future, handle
        assert isinstance(future, asyncio.Future)
        assert await future == "done"

    run_async(main)
    future_id = recorder.id_of(seen["future"])
    handle_id = recorder.id_of(seen["handle"])
    assert recorder.inits[future_id].type == "Future"
    assert recorder.of(future_id) == ["init", "promise_resolve", "destroy"]
    names = [(e.name, e.async_id) for e in recorder.events]
    resolved = names.index(("promise_resolve", future_id))
    assert names.index(("before", handle_id)) < resolved < names.index(("after", handle_id))


def test_a_tracked_future_is_asyncio_s_own_future(run_async: RunAsync, recorder: Recorder) -> None:
    async def main() -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        tracked, bare = loop.create_future(), asyncio.Future[str](loop=loop)
        reprs = [(repr(tracked), repr(bare))]
        tracked.set_result("done")
        bare.set_result("done")
        reprs.append((repr(tracked), repr(bare)))
        assert type(tracked) is type(bare)
        assert recorder.inits[recorder.id_of(tracked)].type == "Future"
        return reprs

    for tracked_repr, bare_repr in run_async(main):
        assert tracked_repr == bare_repr


@pytest.mark.parametrize("how", ["exception", "cancel"])
def test_future_rejected_or_cancelled_resolves_too(
    run_async: RunAsync, recorder: Recorder, how: str
) -> None:
    futures: list[asyncio.Future[Any]] = []

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        futures.append(future)

        async def wait() -> Any:
            return await future

        waiter = asyncio.create_task(wait())  # a task waits: done-callbacks will be due
        await asyncio.sleep(0)
        if how == "exception":
            future.set_exception(ValueError("no"))
            with pytest.raises(ValueError, match="no"):
                await waiter
        else:
            assert future.cancel()
            assert not future.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter

    run_async(main)
    assert recorder.of(recorder.id_of(futures[0])) == ["init", "promise_resolve", "destroy"]


def test_a_future_resolved_before_anyone_waits_is_destroyed_when_collected(
    run_async: RunAsync, recorder: Recorder
) -> None:
    # asyncio's own Future has no hook for its resolution: it is seen when
    # the future schedules its done-callbacks, and here there are none.
    ids: list[int] = []

    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        ids.append(recorder.id_of(future))
        recorder.inits[ids[0]].resource = None  # the recorder must not keep it alive
        future.set_result(1)
        assert await future == 1

    run_async(main)
    gc.collect()
    flush_pending_destroys()
    assert recorder.of(ids[0]) == ["init", "destroy"]


def test_call_soon_handle_runs_in_its_own_scope(run_async: RunAsync, recorder: Recorder) -> None:
    seen: dict[str, Any] = {}

    def callback(value: int) -> None:
        seen["ids"] = (execution_async_id(), trigger_async_id())
        seen["resource"] = execution_async_resource()
        seen["value"] = value

    async def main() -> None:
        seen["creator"] = execution_async_id()
        seen["handle"] = asyncio.get_running_loop().call_soon(callback, 5)
        await asyncio.sleep(0.001)

    run_async(main)
    handle = seen["handle"]
    handle_id = recorder.id_of(handle)
    assert recorder.inits[handle_id].type == "Handle"
    assert seen["ids"] == (handle_id, seen["creator"])
    assert seen["resource"] is handle
    assert seen["value"] == 5
    assert recorder.of(handle_id) == ["init", "before", "after", "destroy"]


def test_timers_nested_form_a_trigger_chain(run_async: RunAsync, recorder: Recorder) -> None:
    handles: list[asyncio.TimerHandle] = []
    ids: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def level(depth: int) -> None:
            ids.append(execution_async_id())
            if depth == 3:
                done.set_result(None)
                return
            handles.append(loop.call_later(0.005, level, depth + 1))

        # Not 0.001: uvloop rounds delays to milliseconds and turns a timer
        # whose delay rounds to 0 into a plain Handle (docs/runtime.md).
        handles.append(loop.call_at(loop.time() + 0.005, level, 1))
        await done

    run_async(main)
    timer_ids = [recorder.id_of(handle) for handle in handles]
    assert ids == timer_ids
    assert all(recorder.inits[i].type == "TimerHandle" for i in timer_ids)
    # Each timer was created by the one before it.
    triggers = [recorder.inits[i].trigger_async_id for i in timer_ids]
    assert triggers[1:] == timer_ids[:-1]
    for timer_id in timer_ids:
        assert recorder.of(timer_id) == ["init", "before", "after", "destroy"]


def test_cancelled_timer_is_destroyed_without_running(
    run_async: RunAsync, recorder: Recorder
) -> None:
    timer_ids: list[int] = []

    async def main() -> None:
        timer = asyncio.get_running_loop().call_later(10, pytest.fail, "must not run")
        timer_ids.append(recorder.id_of(timer))
        timer.cancel()
        # uvloop's handles cannot be watched: theirs comes when collected,
        # so let go of every reference to it, the recorder's included.
        recorder.inits[timer_ids[0]].resource = None
        del timer
        gc.collect()
        await asyncio.sleep(0.001)

    run_async(main)
    assert recorder.of(timer_ids[0]) == ["init", "destroy"]


def test_tasks_and_timers_nest_into_a_trigger_tree(run_async: RunAsync, recorder: Recorder) -> None:
    created: list[tuple[int, object]] = []

    async def inner() -> None:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        created.append((execution_async_id(), finished))
        created.append((execution_async_id(), loop.call_later(0, finished.set_result, None)))
        await finished

    async def outer() -> None:
        task = asyncio.create_task(inner())
        created.append((execution_async_id(), task))
        await task

    async def main() -> None:
        task = asyncio.create_task(outer())
        created.append((execution_async_id(), task))
        await task

    run_async(main)
    for creator, resource in created:
        assert recorder.inits[recorder.id_of(resource)].trigger_async_id == creator
    check_invariants(recorder.events)


def test_executor_jobs_and_to_thread(run_async: RunAsync, recorder: Recorder) -> None:
    seen: list[tuple[int, int, object]] = []

    def job() -> str:
        seen.append((execution_async_id(), trigger_async_id(), execution_async_resource()))
        return "ran"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        creator = execution_async_id()
        assert await loop.run_in_executor(None, job) == "ran"
        assert await asyncio.to_thread(job) == "ran"
        assert all(trigger == creator for _, trigger, _ in seen)

    run_async(main)
    assert len(seen) == 2
    for async_id, _, resource in seen:
        init = recorder.inits[async_id]
        assert init.type == "ExecutorJob"
        assert init.resource is resource
        assert recorder.of(async_id) == ["init", "before", "after", "destroy"]
    check_invariants(recorder.events)


def test_executor_jobs_in_a_process_pool(run_async: RunAsync, recorder: Recorder) -> None:
    # The pool pickles each job: the worker process runs the bare function
    # (these ids mean nothing there), and the job's destroy comes once the
    # pool has let go of it.
    job_ids: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            assert await loop.run_in_executor(pool, operator.mul, 6, 7) == 42
        job_ids.extend(i for i, event in recorder.inits.items() if event.type == "ExecutorJob")
        for async_id in job_ids:
            recorder.inits[async_id].resource = None
        gc.collect()
        await asyncio.sleep(0.001)

    run_async(main)
    assert len(job_ids) == 1
    assert recorder.of(job_ids[0]) == ["init", "destroy"]
    check_invariants(recorder.events)


def test_run_coroutine_threadsafe_keeps_the_chain(run_async: RunAsync, recorder: Recorder) -> None:
    seen: dict[str, Any] = {}

    async def remote() -> str:
        seen["task"] = asyncio.current_task()
        seen["ids"] = (execution_async_id(), trigger_async_id())
        return "from thread"

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def in_thread() -> str:
            seen["thread_id"] = execution_async_id()
            future = asyncio.run_coroutine_threadsafe(remote(), loop)
            return future.result(timeout=5)

        assert await asyncio.to_thread(in_thread) == "from thread"

    run_async(main)
    task_id = recorder.id_of(seen["task"])
    assert seen["ids"][0] == task_id
    # The task was created by the call_soon_threadsafe handle the thread scheduled.
    handle_id = seen["ids"][1]
    assert recorder.inits[handle_id].type == "Handle"
    assert recorder.inits[handle_id].trigger_async_id == seen["thread_id"]
    check_invariants(recorder.events)


def test_threads_started_while_tracking(recorder: Recorder) -> None:
    seen: list[tuple[int, int, object]] = []
    creator = execution_async_id()

    def body() -> None:
        seen.append((execution_async_id(), trigger_async_id(), execution_async_resource()))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    thread_id = recorder.id_of(thread)
    assert recorder.inits[thread_id].type == "Thread"
    assert seen == [(thread_id, creator, thread)]
    assert recorder.of(thread_id) == ["init", "before", "after", "destroy"]
    assert "run" not in vars(thread)


def test_eager_task_gets_init_before_its_first_step(
    run_async: RunAsync, recorder: Recorder, loop_name: str
) -> None:
    if sys.version_info < (3, 12):
        pytest.skip("eager tasks are 3.12+")
    if loop_name == "uvloop" and sys.version_info >= (3, 13):
        pytest.skip("uvloop 0.23 passes eager_start= to the factory, which 3.13's refuses")
    seen: dict[str, Any] = {}

    async def eager() -> int:
        seen["first_step"] = (execution_async_id(), execution_async_resource())
        await asyncio.sleep(0)
        return 3

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            task = loop.create_task(eager())
            # Eager: the first step already ran inside create_task.
            assert "first_step" in seen
            seen["task"] = task
            assert await task == 3
            finished = loop.create_task(asyncio.sleep(0, "sync"))
            assert await finished == "sync"
        finally:
            loop.set_task_factory(None)

    run_async(main)
    task_id = recorder.id_of(seen["task"])
    assert seen["first_step"] == (task_id, seen["task"])
    assert recorder.of(task_id)[:2] == ["init", "before"]
    assert recorder.of(task_id)[-1] == "destroy"
    check_invariants(recorder.events)


def test_task_repr_and_coroutine_introspection_stay_the_users(
    run_async: RunAsync, recorder: Recorder
) -> None:
    async def introspected() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(introspected())
        await asyncio.sleep(0)
        assert "introspected" in repr(task)
        coro: Any = task.get_coro()
        assert coro.__qualname__.endswith("introspected")
        assert coro.cr_frame is not None
        assert task.get_stack()
        await task

    run_async(main)
    assert "Task" in recorder.types()


def test_destroy_of_a_collected_pending_task_is_queued_not_tracked(
    run_async: RunAsync, recorder: Recorder
) -> None:
    ids: list[int] = []

    async def never_finishes() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(never_finishes())
        await asyncio.sleep(0)
        ids.append(recorder.id_of(task))
        # Drop the task while it waits: its destroy comes from the collector,
        # queued and delivered on the next loop iteration.
        recorder.inits[ids[0]].resource = None
        del task
        gc.collect()
        await asyncio.sleep(0.001)

    run_async(main)
    assert recorder.of(ids[0])[-1] == "destroy"
    # The delivery itself is no resource: nothing was created from the collector.
    for event in recorder.inits.values():
        callback = getattr(event.resource, "_callback", None)  # stdlib handles only
        assert getattr(callback, "callback", None) is not flush_pending_destroys
    check_invariants(recorder.events)


def test_threadsafe_handles_get_init_before_they_run(
    run_async: RunAsync, recorder: Recorder
) -> None:
    # Many threads scheduling at once: the loop may pick a handle up before
    # its scheduling thread has emitted init; init must still come first.
    ran: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        total = 4 * 200

        def callback() -> None:
            ran.append(execution_async_id())
            if len(ran) == total:
                done.set_result(None)

        def schedule() -> None:
            for _ in range(200):
                loop.call_soon_threadsafe(callback)

        threads = [threading.Thread(target=schedule) for _ in range(4)]
        for thread in threads:
            thread.start()
        await asyncio.wait_for(done, 10)
        for thread in threads:
            thread.join()

    run_async(main)
    assert len(set(ran)) == 800
    assert all(recorder.inits[async_id].type == "Handle" for async_id in ran)
    check_invariants(recorder.events)


def test_a_task_given_a_context_runs_in_it_unchanged(
    run_async: RunAsync, recorder: Recorder
) -> None:
    storage = AsyncLocalStorage[str](name="given")
    seen: dict[str, Any] = {}

    async def child() -> None:
        seen["ids"] = (execution_async_id(), execution_async_resource())
        seen["store"] = storage.get_store()
        storage.enter_with("changed inside")
        await asyncio.sleep(0)
        seen["after_await"] = execution_async_id()

    async def main() -> None:
        context = copy_context()
        context.run(storage.enter_with, "given")
        task = asyncio.get_running_loop().create_task(child(), context=context)
        seen["task"] = task
        await task
        # The task ran in the very context it was given: what it entered is
        # there, and the frame set for its steps is not left behind.
        assert context.run(storage.get_store) == "changed inside"
        assert context.run(execution_async_id) == execution_async_id()

    run_async(main)
    task_id = recorder.id_of(seen["task"])
    assert seen["ids"] == (task_id, seen["task"])
    assert seen["after_await"] == task_id
    assert seen["store"] == "given"
