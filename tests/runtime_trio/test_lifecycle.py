"""trio tasks emit init/before/after/destroy and carry their own async ids."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import trio

import async_hooks.trio
from async_hooks import (
    AsyncResource,
    create_hook,
    execution_async_id,
    execution_async_resource,
    trigger_async_id,
)

from .conftest import TrioEvents


def run_tracked(main: Any) -> None:
    trio.run(main, instruments=[async_hooks.trio.instrument()])


def test_each_task_is_announced_with_its_spawner_as_trigger(trio_events: TrioEvents) -> None:
    seen: dict[str, tuple[int, int, object]] = {}

    async def child(name: str) -> None:
        seen[name] = (execution_async_id(), trigger_async_id(), execution_async_resource())
        await trio.sleep(0)

    async def main() -> None:
        seen["main"] = (execution_async_id(), trigger_async_id(), execution_async_resource())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, "a")
            nursery.start_soon(child, "b")

    run_tracked(main)

    main_id, main_trigger, main_task = seen["main"]
    assert trio_events.inits[main_id].resource is main_task
    assert trio_events.inits[main_id].trigger_async_id == main_trigger
    for name in ("a", "b"):
        async_id, trigger, task = seen[name]
        assert isinstance(task, trio.lowlevel.Task)
        assert trio_events.inits[async_id].resource is task
        assert trigger == main_id == trio_events.inits[async_id].trigger_async_id
    assert len({seen[name][0] for name in seen}) == 3


def test_the_first_task_of_a_run_is_triggered_by_the_caller_of_trio_run(
    trio_events: TrioEvents,
) -> None:
    async def main() -> None:
        await trio.sleep(0)

    run_tracked(main)

    roots = [init for init in trio_events.inits.values() if init.trigger_async_id == 1]
    assert len(roots) == 1
    assert roots[0].resource.name == "<init>"  # type: ignore[attr-defined]


def test_events_of_a_task_come_in_node_order(trio_events: TrioEvents) -> None:
    child_ids: list[int] = []

    async def child() -> None:
        child_ids.append(execution_async_id())
        for _ in range(3):
            await trio.sleep(0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    run_tracked(main)

    (child_id,) = child_ids
    events = trio_events.events_of(child_id)
    # One step per checkpoint plus the first one, then destroy after the last after.
    assert events == ["init"] + ["before", "after"] * 4 + ["destroy"]
    # Every task of the run ends with exactly one destroy.
    for async_id in trio_events.inits:
        assert trio_events.events_of(async_id).count("destroy") == 1
        assert trio_events.events_of(async_id)[-1] == "destroy"


def test_before_and_after_run_in_the_scope_of_the_task(trio_events: TrioEvents) -> None:
    async def main() -> None:
        await trio.sleep(0)

    run_tracked(main)

    for event, async_id, scope_id in trio_events.log:
        if event in ("before", "after"):
            assert scope_id == async_id


def test_trigger_is_the_task_that_called_start_soon_not_the_nursery_owner(
    trio_events: TrioEvents,
) -> None:
    ids: dict[str, tuple[int, int]] = {}

    async def grandchild() -> None:
        ids["grandchild"] = (execution_async_id(), trigger_async_id())

    async def child(nursery: trio.Nursery) -> None:
        ids["child"] = (execution_async_id(), trigger_async_id())
        nursery.start_soon(grandchild)

    async def main() -> None:
        ids["main"] = (execution_async_id(), trigger_async_id())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, nursery)

    run_tracked(main)

    assert ids["child"][1] == ids["main"][0]
    assert ids["grandchild"][1] == ids["child"][0]


def test_nursery_start_triggers_from_the_caller(trio_events: TrioEvents) -> None:
    ids: dict[str, tuple[int, int]] = {}

    async def server(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        ids["server"] = (execution_async_id(), trigger_async_id())
        task_status.started()
        await trio.sleep(0)
        # Reparented into the outer nursery: the ids stay the same.
        assert (execution_async_id(), trigger_async_id()) == ids["server"]

    async def main() -> None:
        ids["main"] = (execution_async_id(), trigger_async_id())
        async with trio.open_nursery() as nursery:
            await nursery.start(server)

    run_tracked(main)

    assert ids["server"][1] == ids["main"][0]
    assert ids["server"][0] in trio_events.inits


def test_spawning_inside_an_async_resource_scope_triggers_from_the_resource(
    trio_events: TrioEvents,
) -> None:
    ids: dict[str, int] = {}

    async def child() -> None:
        ids["child_trigger"] = trigger_async_id()

    async def main() -> None:
        resource = AsyncResource("Query")
        ids["resource"] = resource.async_id()
        async with trio.open_nursery() as nursery:
            resource.run_in_async_scope(nursery.start_soon, child)

    run_tracked(main)

    assert ids["child_trigger"] == ids["resource"]


def test_failing_and_cancelled_tasks_are_destroyed(trio_events: TrioEvents) -> None:
    ids: dict[str, int] = {}

    async def fails() -> None:
        ids["fails"] = execution_async_id()
        await trio.sleep(0)
        raise ValueError("boom")

    async def sleeps_forever() -> None:
        ids["sleeps"] = execution_async_id()
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeps_forever)
            nursery.start_soon(fails)

    with pytest.raises(ExceptionGroup) as raised:
        run_tracked(main)

    assert raised.group_contains(ValueError, match="boom")
    for name in ("fails", "sleeps"):
        assert trio_events.events_of(ids[name])[-1] == "destroy"
        assert trio_events.events_of(ids[name]).count("destroy") == 1


def test_a_raising_hook_is_reported_and_breaks_nothing(
    trio_events: TrioEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def broken_before(async_id: int) -> None:
        raise RuntimeError("hook bug")

    broken = create_hook(before=broken_before).enable()
    results: list[int] = []

    async def child(n: int) -> None:
        await trio.sleep(0)
        results.append(n)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(child, n)

    try:
        run_tracked(main)
    finally:
        broken.disable()

    assert sorted(results) == [0, 1, 2]
    assert reported
    assert all(isinstance(args.exc_value, RuntimeError) for args in reported)
    # The other hook kept receiving every event, through to the end.
    assert all(trio_events.events_of(i)[-1] == "destroy" for i in trio_events.inits)


@pytest.mark.no_hooks
def test_the_instrument_is_silent_while_no_hook_is_enabled() -> None:
    seen: list[int] = []

    async def child() -> None:
        seen.append(execution_async_id())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    run_tracked(main)

    # No tracking: the task keeps the scope it inherited (the top level here).
    assert seen == [1]


def test_ids_are_fresh_in_every_run(trio_events: TrioEvents) -> None:
    ids: list[int] = []

    async def main() -> None:
        ids.append(execution_async_id())

    run_tracked(main)
    run_tracked(main)

    assert ids[0] < ids[1]
    assert all(trio_events.events_of(i)[-1] == "destroy" for i in ids)
