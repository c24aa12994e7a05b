"""AsyncResource: validation, ids, scopes, bind, destroy."""

from __future__ import annotations

import asyncio
import functools
import gc
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from contextvars import Context
from typing import Any, TypeVarTuple, Unpack

import pytest
import uvloop

from async_hooks import (
    AsyncLocalStorage,
    AsyncResource,
    create_hook,
    execution_async_id,
    execution_async_resource,
    trigger_async_id,
)
from async_hooks.errors import (
    InvalidArgTypeError,
    InvalidAsyncIdTypeError,
    InvalidAsyncIdValueError,
    InvalidAsyncTypeError,
    ResourceDestroyedError,
)

# The signature of the `run_async` fixture of conftest.py.
RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]

Event = tuple[Any, ...]
Ts = TypeVarTuple("Ts")


class Recorder:
    """Hook callbacks that record the events of resources whose type starts with a prefix.

    Runtime tracking delivers events of asyncio's own resources to every
    enabled hook too; only the test's own resources are recorded. Resources
    are held weakly, so that recording never delays their collection.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ids: set[int] = set()
        self.events: list[Event] = []
        self.resources: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type.startswith(self.prefix):
            self.ids.add(async_id)
            self.resources[async_id] = resource
            self.events.append(("init", async_id, type, trigger_async_id))

    def before(self, async_id: int) -> None:
        if async_id in self.ids:
            self.events.append(("before", async_id, execution_async_id()))

    def after(self, async_id: int) -> None:
        if async_id in self.ids:
            self.events.append(("after", async_id))

    def destroy(self, async_id: int) -> None:
        if async_id in self.ids:
            self.events.append(("destroy", async_id))

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event[0] == kind]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder("Test")
    hook = create_hook(recording).enable()
    try:
        yield recording
    finally:
        hook.disable()


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize("bad_type", [None, 42, b"bytes", ["T"]])
def test_a_type_that_is_not_a_str_is_err_invalid_arg_type(bad_type: object) -> None:
    with pytest.raises(InvalidArgTypeError, match='"type"') as caught:
        AsyncResource(bad_type)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


def test_an_empty_type_is_err_async_type() -> None:
    with pytest.raises(InvalidAsyncTypeError) as caught:
        AsyncResource("")
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "ERR_ASYNC_TYPE"


@pytest.mark.parametrize("bad_id", ["1", 1.0, True, False, object()])
def test_a_trigger_id_that_is_not_an_int_is_a_type_error(bad_id: object) -> None:
    with pytest.raises(InvalidAsyncIdTypeError, match="Invalid triggerAsyncId value: ") as caught:
        AsyncResource("T", bad_id)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)
    assert caught.value.code == "ERR_INVALID_ASYNC_ID"


@pytest.mark.parametrize("bad_id", [-2, -100])
def test_a_trigger_id_below_minus_one_is_a_value_error(bad_id: int) -> None:
    with pytest.raises(InvalidAsyncIdValueError) as caught:
        AsyncResource("T", bad_id)
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "ERR_INVALID_ASYNC_ID"
    assert str(caught.value) == f"Invalid triggerAsyncId value: {bad_id}"


def test_trigger_ids_minus_one_zero_explicit_and_none_are_accepted() -> None:
    assert AsyncResource("T", -1).trigger_async_id() == -1
    assert AsyncResource("T", 0).trigger_async_id() == 0
    assert AsyncResource("T", 12345).trigger_async_id() == 12345
    assert AsyncResource("T", None).trigger_async_id() == execution_async_id() == 1
    assert AsyncResource("T", trigger_async_id=7).trigger_async_id() == 7


@pytest.mark.parametrize("bad_flag", [1, 0, "yes", None])
def test_require_manual_destroy_must_be_a_bool(bad_flag: object) -> None:
    with pytest.raises(InvalidArgTypeError, match="require_manual_destroy") as caught:
        AsyncResource("T", require_manual_destroy=bad_flag)  # type: ignore[arg-type]
    assert isinstance(caught.value, TypeError)


def test_a_rejected_resource_takes_no_id_and_emits_nothing(recorder: Recorder) -> None:
    before = AsyncResource("Probe").async_id()
    with pytest.raises(ValueError, match="triggerAsyncId"):
        AsyncResource("TestRejected", -5)
    assert AsyncResource("Probe").async_id() == before + 1
    assert recorder.events == []


# -- ids ----------------------------------------------------------------------------


def test_each_resource_gets_a_fresh_strictly_increasing_id() -> None:
    resources = [AsyncResource("T") for _ in range(50)]
    ids = [resource.async_id() for resource in resources]
    assert ids == sorted(set(ids))
    assert all(async_id > 1 for async_id in ids)
    assert repr(resources[0]).startswith("<AsyncResource type='T' async_id=")
    assert resources[0].type == "T"


def test_ids_are_unique_across_threads() -> None:
    ids: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def create(slot: int) -> None:
        start.wait()
        ids[slot].extend(AsyncResource("T").async_id() for _ in range(3000))

    threads = [threading.Thread(target=create, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every_id = [async_id for batch in ids for async_id in batch]
    assert len(every_id) == len(set(every_id)) == 12000


def test_the_default_trigger_is_the_execution_id_at_creation() -> None:
    outer = AsyncResource("Outer")
    assert outer.trigger_async_id() == 1  # created at top level
    inner = outer.run_in_async_scope(AsyncResource, "Inner")
    assert inner.trigger_async_id() == outer.async_id()
    # And an inner resource's scope nests its own ids.
    assert inner.run_in_async_scope(lambda: (execution_async_id(), trigger_async_id())) == (
        inner.async_id(),
        outer.async_id(),
    )


# -- run_in_async_scope ------------------------------------------------------------------


def test_run_in_async_scope_sees_the_creator_s_stores_and_the_resource_s_ids() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = als.run("creator", AsyncResource, "Scope")

    def inside(a: int, *, b: int) -> tuple[Any, ...]:
        return (
            als.get_store(),
            execution_async_id(),
            trigger_async_id(),
            execution_async_resource(),
            a + b,
        )

    result = als.run("caller", resource.run_in_async_scope, inside, 1, b=2)
    assert result == ("creator", resource.async_id(), 1, resource, 3)
    assert als.get_store() is None


def test_each_run_in_async_scope_call_starts_from_the_creation_context() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = als.run("creator", AsyncResource, "Scope")

    def change() -> str | None:
        seen = als.get_store()
        als.enter_with("changed")
        return seen

    assert resource.run_in_async_scope(change) == "creator"
    assert resource.run_in_async_scope(change) == "creator"
    # Re-entrant: a call from inside another call of the same resource.
    nested = resource.run_in_async_scope(
        lambda: (change(), resource.run_in_async_scope(als.get_store))
    )
    assert nested == ("creator", "creator")


def test_before_and_after_surround_run_in_async_scope(recorder: Recorder) -> None:
    resource = AsyncResource("TestScope")
    async_id = resource.async_id()
    resource.run_in_async_scope(lambda: recorder.events.append(("body", execution_async_id())))
    assert recorder.events[1:] == [
        ("before", async_id, async_id),
        ("body", async_id),
        ("after", async_id),
    ]


def test_after_is_emitted_and_the_exception_propagates_when_fn_raises(
    recorder: Recorder,
) -> None:
    resource = AsyncResource("TestFailing")
    error = RuntimeError("in scope")

    def fail() -> None:
        raise error

    with pytest.raises(RuntimeError) as caught:
        resource.run_in_async_scope(fail)
    assert caught.value is error
    assert [event[0] for event in recorder.events] == ["init", "before", "after"]
    assert execution_async_id() == 1


def test_run_in_async_scope_rejects_a_non_callable() -> None:
    with pytest.raises(InvalidArgTypeError) as caught:
        AsyncResource("T").run_in_async_scope(5)  # type: ignore[call-overload]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


def test_run_in_async_scope_keeps_the_scope_for_a_coroutine(
    run_async: RunAsync, recorder: Recorder
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body(tag: str) -> list[object]:
        seen: list[object] = [tag, als.get_store(), execution_async_id()]
        await asyncio.sleep(0)
        seen += [als.get_store(), execution_async_id(), execution_async_resource()]
        return seen

    async def main() -> tuple[list[object], AsyncResource, str | None]:
        resource = als.run("creator", AsyncResource, "TestCoroutine")
        result = await resource.run_in_async_scope(body, tag="t")
        return result, resource, als.get_store()

    result, resource, after = run_async(main)
    async_id = resource.async_id()
    assert result == ["t", "creator", async_id, "creator", async_id, resource]
    assert after is None
    # Every step of the coroutine ran between before and after.
    kinds = [event[0] for event in recorder.events if event[1] == async_id]
    assert kinds[0] == "init"
    assert kinds[1:] == ["before", "after"] * (len(kinds[1:]) // 2)
    assert len(kinds) >= 5


# -- bind -----------------------------------------------------------------------------


def test_static_bind_creates_a_resource_named_after_the_function(recorder: Recorder) -> None:
    def TestHandler(x: int) -> tuple[int, int]:
        return x, execution_async_id()

    bound = AsyncResource.bind(TestHandler)
    (_, async_id, type_name, trigger) = recorder.of("init")[0]
    resource = recorder.resources[async_id]
    assert type_name == "TestHandler"
    assert trigger == 1
    assert isinstance(resource, AsyncResource)
    assert bound(5) == (5, resource.async_id())
    assert bound.__name__ == "TestHandler"


def test_static_bind_accepts_an_explicit_type(recorder: Recorder) -> None:
    AsyncResource.bind(lambda: None, type="TestExplicit")
    assert [event[2] for event in recorder.of("init")] == ["TestExplicit"]


def test_static_bind_of_a_callable_without_a_name_is_bound_anonymous_fn() -> None:
    types: list[str] = []
    hook = create_hook(init=lambda _id, type, _trigger, _resource: types.append(type)).enable()
    try:
        AsyncResource.bind(functools.partial(print, "x"))
    finally:
        hook.disable()
    assert "bound-anonymous-fn" in types


def test_async_local_storage_bind_creates_a_resource(recorder: Recorder) -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    def TestBound() -> tuple[int | None, int]:
        return als.get_store(), execution_async_id()

    bound = als.run(1, AsyncLocalStorage.bind, TestBound)
    [init] = recorder.of("init")
    assert init[2] == "TestBound"
    assert als.run(2, bound) == (1, init[1])


def test_instance_bind_runs_in_the_resource_s_scope(recorder: Recorder) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = als.run("creator", AsyncResource, "TestInstanceBind")

    def callback(a: int, *, b: int) -> tuple[object, ...]:
        return als.get_store(), execution_async_id(), execution_async_resource(), a * b

    bound = resource.bind(callback)
    assert bound(3, b=4) == ("creator", resource.async_id(), resource, 12)
    assert bound.__name__ == "callback"
    # No new resource: only the one init, then before/after around the call.
    assert [event[0] for event in recorder.events] == ["init", "before", "after"]


def test_bind_rejects_non_callables() -> None:
    with pytest.raises(InvalidArgTypeError):
        AsyncResource.bind(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError):
        AsyncResource("T").bind(3)  # type: ignore[arg-type]


# -- destroy ----------------------------------------------------------------------------


def test_emit_destroy_returns_the_resource_and_a_second_call_raises(recorder: Recorder) -> None:
    resource = AsyncResource("TestDestroy")
    assert resource.emit_destroy() is resource
    with pytest.raises(ResourceDestroyedError) as caught:
        resource.emit_destroy()
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.code == "ERR_ASYNC_RESOURCE_DESTROYED"
    assert recorder.of("destroy") == [("destroy", resource.async_id())]


class _InsideCollector:
    """Tells whether the garbage collector is running right now (gc.callbacks)."""

    def __init__(self) -> None:
        self.collecting = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        self.collecting = phase == "start"

    def __enter__(self) -> _InsideCollector:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


def _cyclic_resource(type: str) -> int:
    """Create a resource that only the cyclic garbage collector can free; return its id."""
    resource = AsyncResource(type)
    holder: list[object] = [resource]
    holder.append(holder)
    return resource.async_id()


def test_destroy_on_collection_is_queued_then_delivered_at_the_next_event() -> None:
    destroyed: list[tuple[int, bool]] = []
    with _InsideCollector() as collector:
        hook = create_hook(
            destroy=lambda async_id: destroyed.append((async_id, collector.collecting))
        ).enable()
        try:
            async_id = _cyclic_resource("TestCollected")
            gc.collect()
            # The weakref callback ran inside the collector: it only queued the event.
            assert [d for d in destroyed if d[0] == async_id] == []
            AsyncResource("Next")  # the next event delivers it
        finally:
            hook.disable()
    assert (async_id, False) in destroyed
    assert [d for d in destroyed if d[0] == async_id] == [(async_id, False)]


def test_destroy_after_the_last_reference_is_dropped_is_not_synchronous(
    recorder: Recorder,
) -> None:
    resource = AsyncResource("TestDropped")
    async_id = resource.async_id()
    del resource
    assert recorder.of("destroy") == []
    # The next event of any kind delivers it: here a before of another resource.
    AsyncResource("Other", require_manual_destroy=True).run_in_async_scope(lambda: None)
    assert recorder.of("destroy") == [("destroy", async_id)]


def test_destroy_on_collection_arrives_at_the_next_loop_iteration(run_async: RunAsync) -> None:
    async def main() -> tuple[int, list[int], list[int]]:
        destroyed: list[int] = []
        hook = create_hook(destroy=destroyed.append).enable()
        try:
            async_id = _cyclic_resource("TestLoop")
            gc.collect()
            right_after = list(destroyed)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return async_id, right_after, destroyed
        finally:
            hook.disable()

    async_id, right_after, destroyed = run_async(main)
    assert async_id not in right_after
    assert destroyed.count(async_id) == 1


@pytest.mark.no_hooks
def test_a_loop_closed_before_its_flush_ran_does_not_stop_later_loops_from_flushing(
    run_async: RunAsync,
) -> None:
    destroyed: list[int] = []
    hook = create_hook(destroy=destroyed.append).enable()
    try:
        # Created first, collected inside the later loop (creating a resource
        # flushes the queue by itself, which would hide what is tested here).
        later = AsyncResource("TestLater")
        later_id = later.async_id()
        cycle: list[object] = [later]
        cycle.append(cycle)
        keep_alive = [cycle]
        del later, cycle

        # A loop stops in the very callback that queues a destroy, then is
        # closed: the flush it had scheduled never runs there. (The stdlib
        # loop: uvloop still runs callbacks added during its last iteration.)
        abandoned = asyncio.new_event_loop()
        first_ids: list[int] = []

        def collect_then_stop() -> None:
            abandoned.stop()
            first_ids.append(_cyclic_resource("TestAbandoned"))
            gc.collect()

        abandoned.call_soon(collect_then_stop)
        abandoned.run_forever()
        abandoned.close()
        assert first_ids[0] not in destroyed

        async def main() -> bool:
            keep_alive.clear()
            gc.collect()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return later_id in destroyed

        delivered = run_async(main)
    finally:
        hook.disable()
    assert delivered
    # The first one was not lost either: it came with the later flush.
    assert destroyed.count(first_ids[0]) == 1
    assert destroyed.count(later_id) == 1


@pytest.mark.parametrize("loop_class", [asyncio.SelectorEventLoop, uvloop.Loop])
def test_no_destroy_inside_the_collector_even_if_scheduling_the_flush_emits_events(
    loop_class: type[asyncio.AbstractEventLoop],
) -> None:
    # Runtime tracking makes call_soon_threadsafe itself emit events (and
    # flush queued destroys first); doing so from the collector callback must
    # still deliver nothing there.
    destroyed: list[tuple[int, bool]] = []

    class EventfulLoop(loop_class):  # type: ignore[valid-type, misc]
        def call_soon_threadsafe(
            self,
            callback: Callable[[Unpack[Ts]], object],
            *args: *Ts,
            context: Context | None = None,
        ) -> asyncio.Handle:
            AsyncResource("Scheduling", require_manual_destroy=True)  # an event here
            handle: asyncio.Handle = super().call_soon_threadsafe(callback, *args, context=context)
            return handle

    async def main() -> tuple[int, list[tuple[int, bool]]]:
        async_id = _cyclic_resource("TestEventful")
        gc.collect()
        right_after = list(destroyed)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return async_id, right_after

    with _InsideCollector() as collector:
        hook = create_hook(
            destroy=lambda async_id: destroyed.append((async_id, collector.collecting))
        ).enable()
        try:
            with asyncio.Runner(loop_factory=EventfulLoop) as runner:
                async_id, right_after = runner.run(main())
        finally:
            hook.disable()
    assert [d for d in right_after if d[0] == async_id] == []
    assert [d for d in destroyed if d[0] == async_id] == [(async_id, False)]


def test_no_hook_callback_at_all_runs_inside_the_collector(run_async: RunAsync) -> None:
    inside_collector: list[str] = []

    async def main() -> None:
        with _InsideCollector() as collector:

            def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
                if collector.collecting:
                    inside_collector.append(f"init {type}")

            def destroy(async_id: int) -> None:
                if collector.collecting:
                    inside_collector.append("destroy")

            hook = create_hook(init=init, destroy=destroy).enable()
            try:
                _cyclic_resource("TestQuiet")
                gc.collect()
                await asyncio.sleep(0)
            finally:
                hook.disable()

    run_async(main)
    assert inside_collector == []


@pytest.mark.no_hooks
def test_destroy_on_collection_only_if_a_destroy_hook_was_enabled_at_creation() -> None:
    destroyed: list[int] = []
    unwatched = AsyncResource("TestUnwatched")
    unwatched_id = unwatched.async_id()
    hook = create_hook(destroy=destroyed.append).enable()
    try:
        manual = AsyncResource("TestManual", require_manual_destroy=True)
        manual_id = manual.async_id()
        del unwatched, manual
        gc.collect()
        AsyncResource("Next")
    finally:
        hook.disable()
    assert unwatched_id not in destroyed
    assert manual_id not in destroyed


def test_destroy_is_emitted_once_when_emitted_manually_then_collected(
    recorder: Recorder,
) -> None:
    resource = AsyncResource("TestOnce")
    async_id = resource.async_id()
    resource.emit_destroy()
    del resource
    gc.collect()
    AsyncResource("Next")
    assert recorder.of("destroy") == [("destroy", async_id)]


def test_pending_destroys_are_delivered_at_exit() -> None:
    script = textwrap.dedent(
        """
        import gc
        from async_hooks import AsyncResource, create_hook

        create_hook(destroy=lambda async_id: print("destroy", async_id, flush=True)).enable()
        resource = AsyncResource("AtExit")
        holder = [resource, None]
        holder[1] = holder
        print("created", resource.async_id(), flush=True)
        del resource, holder
        gc.collect()
        print("collected", flush=True)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    created_id = lines[0].split()[1]
    assert lines == [f"created {created_id}", "collected", f"destroy {created_id}"]


def test_a_subclass_is_a_resource_with_its_own_type(recorder: Recorder) -> None:
    class DbQuery(AsyncResource):
        def __init__(self, sql: str) -> None:
            super().__init__("TestDbQuery")
            self.sql = sql

        def finish(self, callback: Callable[[str], str]) -> str:
            return self.run_in_async_scope(callback, self.sql)

    query = DbQuery("select 1")
    assert query.finish(lambda sql: f"{sql} in {execution_async_id()}") == (
        f"select 1 in {query.async_id()}"
    )
    assert recorder.resources[query.async_id()] is query


# -- Node's worker pool example, with real threads ---------------------------------------


class WorkerPoolTaskInfo(AsyncResource):
    """One task of the pool: its callback runs in the scope of whoever submitted it."""

    def __init__(self, callback: Callable[[BaseException | None, int | None], None]) -> None:
        super().__init__("TestWorkerPoolTaskInfo")
        self.callback = callback

    def done(self, error: BaseException | None, result: int | None) -> None:
        self.run_in_async_scope(self.callback, error, result)
        self.emit_destroy()  # a task info is used once


class WorkerPool:
    """Threads that add two numbers; Node's WorkerPool, without the event emitter."""

    def __init__(self, threads: int) -> None:
        import queue

        self._jobs: queue.Queue[tuple[dict[str, int], WorkerPoolTaskInfo] | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work) for _ in range(threads)]
        for worker in self._workers:
            worker.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            task, info = job
            try:
                info.done(None, task["a"] + task["b"])
            except Exception as error:  # the pool's own bug: hand it to the callback
                info.done(error, None)

    def run_task(
        self, task: dict[str, int], callback: Callable[[BaseException | None, int | None], None]
    ) -> None:
        self._jobs.put((task, WorkerPoolTaskInfo(callback)))

    def close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join()


def test_node_s_worker_pool_example_runs_callbacks_in_the_submitter_s_scope(
    recorder: Recorder,
) -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    pool = WorkerPool(3)
    results: dict[int, tuple[BaseException | None, int | None, int | None, int, int]] = {}
    lock = threading.Lock()
    submitters: dict[int, AsyncResource] = {}

    def submit(i: int) -> None:
        def callback(error: BaseException | None, result: int | None) -> None:
            with lock:
                ids = (execution_async_id(), trigger_async_id())
                results[i] = (error, result, als.get_store(), *ids)

        pool.run_task({"a": 42, "b": i}, callback)

    try:
        for i in range(10):
            # Each submission comes from its own request: a store and a scope.
            submitter = submitters[i] = als.run(i, AsyncResource, "Submitter")
            submitter.run_in_async_scope(submit, i)
    finally:
        pool.close()

    task_infos = {event[1]: event[3] for event in recorder.of("init")}
    assert len(task_infos) == 10
    for i in range(10):
        error, result, store, async_id, trigger = results[i]
        assert (error, result, store) == (None, 42 + i, i)
        # The callback ran in its task info's scope, caused by the submitter.
        assert task_infos[async_id] == trigger == submitters[i].async_id()
    assert sorted(event[1] for event in recorder.of("destroy")) == sorted(task_infos)
