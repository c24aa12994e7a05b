"""Execution ids: top level, resource scopes, threads, and freshness."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context

import pytest

from async_hooks import (
    AsyncLocalStorage,
    AsyncResource,
    execution_async_id,
    execution_async_resource,
    trigger_async_id,
)
from async_hooks.lowlevel import TopLevelResource, new_async_id

# Read at import, at top level: the one object the top level reports.
TOP_LEVEL_RESOURCE = execution_async_resource()


def test_top_level_ids_are_node_s() -> None:
    assert execution_async_id() == 1
    assert trigger_async_id() == 0


def test_top_level_resource_is_one_fixed_object_that_accepts_attributes() -> None:
    first = execution_async_resource()
    assert first is execution_async_resource()
    assert first is TOP_LEVEL_RESOURCE
    assert isinstance(first, TopLevelResource)
    # Tools keep their own data on it, as Node's docs do with executionAsyncResource()[sym].
    first.request_count = 3  # type: ignore[attr-defined]
    try:
        assert execution_async_resource().request_count == 3  # type: ignore[attr-defined]
    finally:
        del first.request_count  # type: ignore[attr-defined]


def test_inside_a_resource_scope_the_ids_and_resource_are_the_resource_s() -> None:
    resource = AsyncResource("Scope")
    seen = resource.run_in_async_scope(
        lambda: (execution_async_id(), trigger_async_id(), execution_async_resource())
    )
    assert seen == (resource.async_id(), resource.trigger_async_id(), resource)
    assert resource.trigger_async_id() == 1
    # And the top level is back afterwards.
    assert (execution_async_id(), trigger_async_id()) == (1, 0)
    assert execution_async_resource() is TOP_LEVEL_RESOURCE


def test_nested_scopes_report_the_innermost_resource_and_unwind() -> None:
    outer = AsyncResource("Outer")
    trace: list[tuple[int, int]] = []

    def in_outer() -> None:
        trace.append((execution_async_id(), trigger_async_id()))
        inner = AsyncResource("Inner")
        inner.run_in_async_scope(lambda: trace.append((execution_async_id(), trigger_async_id())))
        trace.append((execution_async_id(), trigger_async_id()))

    outer.run_in_async_scope(in_outer)
    inner_id = trace[1][0]
    assert trace == [
        (outer.async_id(), 1),
        (inner_id, outer.async_id()),
        (outer.async_id(), 1),
    ]
    assert inner_id > outer.async_id()


def test_ids_are_restored_when_the_scope_raises() -> None:
    resource = AsyncResource("Failing")

    def fail() -> None:
        assert execution_async_id() == resource.async_id()
        raise LookupError("inside")

    with pytest.raises(LookupError, match="inside"):
        resource.run_in_async_scope(fail)
    assert execution_async_id() == 1
    assert trigger_async_id() == 0


@pytest.mark.no_hooks
def test_a_thread_starts_at_top_level_even_when_started_inside_a_scope() -> None:
    seen: list[tuple[int, int, object]] = []

    def in_thread() -> None:
        seen.append((execution_async_id(), trigger_async_id(), execution_async_resource()))

    def start_thread() -> None:
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()

    AsyncResource("Starter").run_in_async_scope(start_thread)
    assert seen == [(1, 0, TOP_LEVEL_RESOURCE)]


def test_ids_are_never_reused_and_strictly_increase() -> None:
    ids = [new_async_id() for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    resource_ids = [AsyncResource("T").async_id() for _ in range(100)]
    assert all(a < b for a, b in itertools.pairwise(resource_ids))
    assert resource_ids[0] > ids[-1]
    assert min(ids) > 1  # 1 is the top level, 0 means "no trigger"


def test_ids_are_unique_across_threads() -> None:
    def allocate(_: int) -> list[int]:
        return [AsyncResource("Threaded").async_id() for _ in range(2000)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(allocate, range(8)))
    every_id = [async_id for batch in batches for async_id in batch]
    assert len(set(every_id)) == len(every_id) == 16000
    # Within one thread they still increase.
    for batch in batches:
        assert batch == sorted(batch)


def test_a_bound_function_reports_its_resource_s_ids() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    bound = als.run(
        "store", AsyncLocalStorage.bind, lambda: (execution_async_id(), als.get_store())
    )
    async_id, store = bound()
    assert store == "store"
    assert async_id > 1
    assert execution_async_id() == 1


def test_an_empty_context_is_at_top_level() -> None:
    resource = AsyncResource("T")
    # A context copied inside the scope keeps the scope; a fresh one does not.
    inside = resource.run_in_async_scope(copy_context)
    assert inside.run(execution_async_id) == resource.async_id()
    from contextvars import Context

    assert Context().run(execution_async_id) == 1


def test_a_snapshot_carries_stores_but_the_caller_s_ids() -> None:
    # As in Node, a snapshot restores stores only: executionAsyncId() inside
    # a snapshot call is the caller's, where a bound function reports its own
    # resource's.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    taken_in = als.run("captured", AsyncResource, "TakenIn")
    runner = taken_in.run_in_async_scope(AsyncLocalStorage.snapshot)

    def read() -> tuple[int, int, str | None]:
        return execution_async_id(), trigger_async_id(), als.get_store()

    assert runner(read) == (1, 0, "captured")
    caller = AsyncResource("Caller")
    assert caller.run_in_async_scope(runner, read) == (caller.async_id(), 1, "captured")
    # Called where it was taken, it is the same scope, of course.
    assert taken_in.run_in_async_scope(runner, read) == (taken_in.async_id(), 1, "captured")
