"""Runtime activation (the private ``_runtime`` package): on with the first hook, off with the last.

And tracking composes with others' task factories and loop policies.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar, cast

import pytest
import uvloop

from async_hooks import create_hook, execution_async_id
from async_hooks.lowlevel import is_tracking

from .conftest import Recorder, RunAsync, check_invariants, make_recorder

T = TypeVar("T")

_WATCHED = (
    "create_task",
    "create_future",
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "run_in_executor",
    "create_server",
    "create_connection",
    "create_unix_server",
    "create_unix_connection",
)


def _current_objects() -> dict[str, object]:
    found: dict[str, object] = {}
    for owner in (asyncio.BaseEventLoop, uvloop.Loop):
        for name in _WATCHED:
            found[f"{owner.__name__}.{name}"] = getattr(owner, name)
        found[f"{owner.__name__}.own"] = sorted(vars(owner))
    found["Handle.cancel"] = asyncio.Handle.cancel
    found["Server.close"] = asyncio.base_events.Server.close
    found["Thread.start"] = threading.Thread.start
    return found


@pytest.mark.no_hooks
def test_nothing_is_patched_without_hooks_and_originals_come_back() -> None:
    before = _current_objects()
    assert not is_tracking()
    first = create_hook(init=lambda *args: None).enable()
    second = create_hook(before=lambda async_id: None).enable()
    try:
        assert is_tracking()
        assert asyncio.BaseEventLoop.call_soon is not before["BaseEventLoop.call_soon"]
        assert uvloop.Loop.create_task is not before["Loop.create_task"]
        first.disable()
        assert is_tracking()  # one hook is still enabled
    finally:
        first.disable()
        second.disable()
    assert not is_tracking()
    after = _current_objects()
    for name, original in before.items():
        if name.endswith(".own"):
            assert after[name] == original, name
        else:
            assert after[name] is original, name


class RecordingFactory:
    """A task factory of someone else's, which records its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Generator[Any, None, T] | Coroutine[Any, Any, T],
        /,
        **kwargs: Any,
    ) -> asyncio.Future[T]:
        self.calls.append(getattr(coro, "__qualname__", "?"))
        task: asyncio.Task[T] = asyncio.Task(cast(Any, coro), loop=loop, **kwargs)
        return task


def test_a_task_factory_installed_before_or_after_enabling_keeps_working(
    run_async: RunAsync,
) -> None:
    factory = RecordingFactory()
    recorder = make_recorder()
    assert recorder.hook is not None
    seen: list[int] = []

    async def job() -> int:
        seen.append(execution_async_id())
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)  # before the hook
        assert recorder.hook is not None
        recorder.hook.enable()
        try:
            first = loop.create_task(job())
            await first
            loop.set_task_factory(None)
            loop.set_task_factory(factory)  # again, after the hook
            second = asyncio.create_task(job())
            await second
            assert cast(object, loop.get_task_factory()) is factory
            assert seen == [recorder.id_of(first), recorder.id_of(second)]
        finally:
            recorder.hook.disable()
            loop.set_task_factory(None)

    run_async(main)
    assert (
        factory.calls
        == ["test_a_task_factory_installed_before_or_after_enabling_keeps_working.<locals>.job"] * 2
    )
    check_invariants(recorder.events)


def test_loop_policies_keep_working(recorder: Recorder) -> None:
    policy = uvloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        seen: list[int] = []

        async def main() -> None:
            seen.append(execution_async_id())

        task = loop.create_task(main())
        loop.run_until_complete(task)
        assert seen == [recorder.id_of(task)]
    finally:
        loop.close()


def test_late_enable_tracks_only_what_is_created_afterwards(run_async: RunAsync) -> None:
    recorder = make_recorder()
    assert recorder.hook is not None

    async def waiter(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> None:
        assert recorder.hook is not None
        event = asyncio.Event()
        early = asyncio.create_task(waiter(event))
        await asyncio.sleep(0)
        recorder.hook.enable()
        try:
            late = asyncio.create_task(waiter(event))
            await asyncio.sleep(0)
            event.set()
            await asyncio.gather(early, late)
            assert all(e.resource is not early for e in recorder.inits.values())
            assert recorder.of(recorder.id_of(late))[-1] == "destroy"
        finally:
            recorder.hook.disable()

    run_async(main)
    check_invariants(recorder.events)


def test_enable_and_disable_inside_hooks_take_effect_after_the_dispatch(
    run_async: RunAsync,
) -> None:
    later = make_recorder()
    assert later.hook is not None
    inits: list[str] = []

    def on_init(async_id: int, type: str, trigger: int, resource: object) -> None:
        inits.append(type)
        assert later.hook is not None
        later.hook.enable()
        switcher.disable()

    switcher = create_hook(init=on_init)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        switcher.enable()
        try:
            handle = loop.call_soon(lambda: None)
            # The init that switched hooks reached only the hook enabled then.
            assert inits == ["Handle"]
            assert not later.inits
            await asyncio.sleep(0)
            # Its init went out before `later` was enabled; its steps did reach it.
            assert all(event.resource is not handle for event in later.inits.values())
            timer = loop.call_later(0, lambda: None)
            await asyncio.sleep(0.001)
            assert later.of(later.id_of(timer)) == ["init", "before", "after", "destroy"]
            assert inits == ["Handle"]
        finally:
            switcher.disable()
            assert later.hook is not None
            later.hook.disable()

    run_async(main)


def test_a_raising_hook_breaks_neither_the_program_nor_its_ids(
    run_async: RunAsync, unraisable: list[Any]
) -> None:
    def broken(async_id: int) -> None:
        raise RuntimeError("hook bug")

    hook = create_hook(before=broken).enable()
    seen: list[int] = []

    async def child() -> str:
        seen.append(execution_async_id())
        return "fine"

    async def main() -> None:
        task = asyncio.create_task(child())
        assert await task == "fine"
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, 2)
        assert await future == 2

    try:
        run_async(main)
    finally:
        hook.disable()
    assert seen
    assert seen[0] != 1
    assert unraisable
    assert all(isinstance(args.exc_value, RuntimeError) for args in unraisable)
