"""Many short-lived tracked tasks leave nothing behind (the soak script runs a million)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from async_hooks.runtime import registry

from .conftest import Recorder, RunAsync


async def _short_lived(count: int) -> None:
    async def tiny() -> None:
        await asyncio.sleep(0)

    for _ in range(count // 100):
        await asyncio.gather(*(tiny() for _ in range(100)))


def test_short_lived_tasks_leave_no_growth(run_async: RunAsync, recorder: Recorder) -> None:
    recorder.events.clear()
    run_async(lambda: _short_lived(500))  # warm up caches and free lists
    recorder.events.clear()
    recorder.inits.clear()
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(3):
            run_async(lambda: _short_lived(500))
            # The recorder's own lists are the test's, not the library's.
            recorder.events.clear()
            recorder.inits.clear()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not registry.live
    # 1,500 tasks (and their futures and handles): a leak of even one small
    # object per task would pass 100 kB.
    assert end - start < 32 * 1024
