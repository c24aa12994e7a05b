"""Tracking turns itself on with the first hook and off with the last."""

from __future__ import annotations

import pytest
import trio

import async_hooks.trio
from async_hooks import create_hook, execution_async_id, trigger_async_id

from .conftest import TrioEvents

ORIGINAL_RUN = trio.run
ORIGINAL_START_GUEST_RUN = trio.lowlevel.start_guest_run


def test_a_run_started_while_a_hook_is_enabled_is_tracked(trio_events: TrioEvents) -> None:
    ids: list[int] = []

    async def main() -> None:
        ids.append(execution_async_id())

    trio.run(main)  # no instrument given: one is attached for us

    assert ids[0] in trio_events.inits
    assert trio_events.events_of(ids[0])[-1] == "destroy"


@pytest.mark.no_hooks
def test_trio_is_untouched_while_no_hook_is_enabled() -> None:
    assert trio.run is ORIGINAL_RUN
    hook = create_hook(init=lambda *args: None).enable()
    try:
        assert trio.run is not ORIGINAL_RUN
        assert trio.run.__wrapped__ is ORIGINAL_RUN  # type: ignore[attr-defined]
        assert trio.lowlevel.start_guest_run is not ORIGINAL_START_GUEST_RUN
    finally:
        hook.disable()
    assert trio.run is ORIGINAL_RUN
    assert trio.lowlevel.start_guest_run is ORIGINAL_START_GUEST_RUN


def test_an_explicit_instrument_is_not_doubled(trio_events: TrioEvents) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)

    trio.run(main, instruments=[async_hooks.trio.instrument()])

    inits = [event for event in trio_events.log if event[0] == "init"]
    assert len(inits) == len(trio_events.inits)
    for async_id in trio_events.inits:
        assert trio_events.events_of(async_id).count("before") == (
            trio_events.events_of(async_id).count("after")
        )


@pytest.mark.no_hooks
def test_enabling_a_hook_inside_a_run_tracks_the_rest_of_it() -> None:
    events = TrioEvents()
    hook = create_hook(events)
    ids: dict[str, int] = {}

    async def child() -> None:
        ids["child"] = execution_async_id()
        ids["child_trigger"] = trigger_async_id()

    async def main() -> None:
        ids["main_before_enable"] = execution_async_id()
        hook.enable()
        await trio.sleep(0)
        # The running task is adopted at its next step, without an init (as Node).
        ids["main"] = execution_async_id()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    try:
        trio.run(main)
    finally:
        hook.disable()

    assert ids["main_before_enable"] == 1
    assert ids["main"] > 1
    assert ids["main"] not in events.inits
    assert ids["child_trigger"] == ids["main"]
    assert events.events_of(ids["child"]) == ["init", "before", "after", "destroy"]


@pytest.mark.no_hooks
def test_disabling_the_last_hook_inside_a_run_stops_the_events() -> None:
    events = TrioEvents()
    hook = create_hook(events).enable()
    ids: dict[str, int] = {}

    async def child() -> None:
        ids["child"] = execution_async_id()

    async def main() -> None:
        ids["main"] = execution_async_id()
        hook.disable()
        ids["events_at_disable"] = len(events.log)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
        await trio.sleep(0)

    try:
        trio.run(main)
    finally:
        hook.disable()

    assert len(events.log) == ids["events_at_disable"]
    # Untracked, the child shares the scope of the task that spawned it.
    assert ids["child"] == ids["main"]
    assert trio.run is ORIGINAL_RUN


def test_a_task_keeps_its_id_when_tracking_stops_and_starts_again() -> None:
    events = TrioEvents()
    hook = create_hook(events)
    ids: list[int] = []

    async def main() -> None:
        ids.append(execution_async_id())
        hook.disable()
        await trio.sleep(0)
        ids.append(execution_async_id())
        hook.enable()
        await trio.sleep(0)
        ids.append(execution_async_id())

    hook.enable()
    try:
        trio.run(main)
    finally:
        hook.disable()

    assert ids[0] == ids[1] == ids[2]
    assert events.events_of(ids[0])[-1] == "destroy"
