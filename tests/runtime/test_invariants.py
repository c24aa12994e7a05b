"""Lifecycle invariants over randomized asyncio programs (hypothesis), on both loops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from async_hooks import execution_async_id

from .conftest import RunAsync, check_invariants, make_recorder


@dataclass(frozen=True)
class Step:
    """One operation of a random program; ``children`` run inside what it creates."""

    kind: str
    children: tuple[Step, ...] = ()


KINDS = ("task", "soon", "later", "future", "sleep", "gather", "thread")

steps: st.SearchStrategy[Step] = st.recursive(
    st.builds(Step, st.sampled_from(KINDS)),
    lambda inner: st.builds(Step, st.sampled_from(KINDS), st.lists(inner, max_size=3).map(tuple)),
    max_leaves=12,
)


class Program:
    """Runs a tree of steps and notes, for each resource, the id that created it."""

    def __init__(self) -> None:
        self.created: list[tuple[int, object]] = []

    def note(self, resource: object) -> None:
        self.created.append((execution_async_id(), resource))

    async def run(self, todo: tuple[Step, ...]) -> None:
        for step in todo:
            await self.run_one(step)

    async def run_one(self, step: Step) -> None:
        loop = asyncio.get_running_loop()
        if step.kind == "task":
            task = loop.create_task(self.run(step.children))
            self.note(task)
            await task
        elif step.kind == "gather":
            await asyncio.gather(*(self.run((child,)) for child in step.children))
        elif step.kind in ("soon", "later"):
            done = loop.create_future()

            def callback() -> None:
                # Children of a callback run in a task it creates.
                task = loop.create_task(self.run(step.children))
                self.note(task)
                task.add_done_callback(lambda _: done.set_result(None))

            handle = (
                loop.call_soon(callback)
                if step.kind == "soon"
                else loop.call_later(0.0005, callback)
            )
            self.note(handle)
            await done
        elif step.kind == "future":
            future = loop.create_future()
            self.note(future)
            loop.call_soon(future.set_result, None)
            await future
            await self.run(step.children)
        elif step.kind == "sleep":
            await asyncio.sleep(0)
            await self.run(step.children)
        else:
            await loop.run_in_executor(None, execution_async_id)
            await self.run(step.children)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(program=st.lists(steps, min_size=1, max_size=4).map(tuple))
def test_random_programs_keep_the_lifecycle_rules(
    run_async: RunAsync, program: tuple[Step, ...]
) -> None:
    recorder = make_recorder()
    assert recorder.hook is not None
    runner = Program()
    recorder.hook.enable()
    try:
        run_async(lambda: runner.run(program))
    finally:
        recorder.hook.disable()
    check_invariants(recorder.events)
    for creator, resource in runner.created:
        async_id = recorder.id_of(resource)
        assert recorder.inits[async_id].trigger_async_id == creator
        names = recorder.of(async_id)
        assert names.count("destroy") == 1
        if recorder.inits[async_id].type in ("Task", "Future"):
            assert names.count("promise_resolve") == 1
