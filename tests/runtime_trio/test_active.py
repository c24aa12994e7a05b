"""trio tasks in the tools API: get_active_resources() and get_active_resources_info()."""

from __future__ import annotations

import pytest
import trio

from async_hooks import AsyncLocalStorage, get_active_resources_info
from async_hooks._runtime._live import live_resources
from async_hooks.diagnostics import get_active_resources
from async_hooks.trio import TRIO_TASK_TYPE

from .conftest import TrioEvents


@pytest.mark.usefixtures("creation_sites")
def test_a_sleeping_trio_task_is_listed_with_its_ids_site_and_stores(
    trio_events: TrioEvents,
) -> None:
    request = AsyncLocalStorage[str](name="trio-active-request")
    seen: list[object] = []

    async def sleeper(started: trio.Event) -> None:
        started.set()
        await trio.sleep(10)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            started = trio.Event()
            request.run("req-7", nursery.start_soon, sleeper, started)
            await started.wait()
            views = [view for view in get_active_resources() if view.type == TRIO_TASK_TYPE]
            (view,) = [
                view for view in views if getattr(view.resource, "name", "").endswith("sleeper")
            ]
            seen.append(view)
            assert view.async_id in trio_events.inits
            assert view.trigger_async_id == trio_events.inits[view.async_id].trigger_async_id
            assert view.creation_site is not None
            assert view.creation_site.filename == __file__
            assert view.creation_site.function == "main"
            assert view.stores[request] == "req-7"
            assert view.keeps_busy
            assert TRIO_TASK_TYPE in get_active_resources_info()
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert seen
    assert not [record for record in live_resources.values() if record.type == TRIO_TASK_TYPE]


@pytest.mark.no_hooks
def test_trio_tasks_are_no_longer_listed_once_the_last_hook_is_disabled() -> None:
    from async_hooks import create_hook

    hook = create_hook(init=lambda *_: None).enable()
    listed: list[int] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 10)
            await trio.sleep(0)
            listed.append(get_active_resources_info().count(TRIO_TASK_TYPE))
            hook.disable()
            await trio.sleep(0)  # the instrument sees no hook and lets go
            listed.append(
                len([record for record in live_resources.values() if record.type == TRIO_TASK_TYPE])
            )
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        hook.disable()
    assert listed[0] >= 2  # main and the sleeper
    assert listed[1] == 0
