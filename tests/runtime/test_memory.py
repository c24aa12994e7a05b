"""Many short-lived tracked tasks leave nothing behind (the soak script runs a million)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from async_hooks import create_hook
from async_hooks._runtime import _live

from .conftest import RunAsync


async def _short_lived(count: int) -> None:
    async def tiny() -> None:
        await asyncio.sleep(0)

    for _ in range(count // 100):
        await asyncio.gather(*(tiny() for _ in range(100)))


@pytest.mark.no_hooks
@pytest.mark.parametrize("rounds", [3])
def test_short_lived_tasks_leave_no_growth(run_async: RunAsync, rounds: int) -> None:
    hook = create_hook(init=lambda *args: None, destroy=lambda async_id: None).enable()
    try:
        run_async(lambda: _short_lived(1_000))  # warm up caches and free lists
        gc.collect()
        tracemalloc.start()
        try:
            start, _ = tracemalloc.get_traced_memory()
            for _ in range(rounds):
                run_async(lambda: _short_lived(1_000))
            gc.collect()
            end, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        hook.disable()
    assert not _live.live_resources
    # 3,000 tasks, with their futures and handles: keeping even one small
    # object per task would pass 150 kB; what is left is interpreter noise.
    assert end - start < 96 * 1024, end - start


def test_tracked_resources_are_freed_without_the_cyclic_collector(run_async: RunAsync) -> None:
    # Reference cycles would leave every finished resource to the cyclic
    # collector: memory would climb between collections and time go to them.
    async def work() -> None:
        loop = asyncio.get_running_loop()
        await _short_lived(200)
        for _ in range(100):
            loop.call_soon(lambda: None)
            loop.call_later(0, lambda: None).cancel()
        future = loop.create_future()
        loop.call_soon(future.set_result, 1)
        await future
        await asyncio.to_thread(lambda: None)
        await asyncio.sleep(0.005)

    hook = create_hook(init=lambda *args: None, destroy=lambda async_id: None).enable()
    try:
        run_async(work)  # warm up
        gc.collect()
        gc.disable()
        try:
            run_async(work)
            garbage = gc.collect()
        finally:
            gc.enable()
    finally:
        hook.disable()
    assert garbage == 0
