"""A hook that records every lifecycle event, enabled for one test and always disabled after."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from async_hooks import AsyncHook, create_hook

RunAsync = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]


@dataclass
class Event:
    name: str
    async_id: int
    thread: int
    type: str = ""
    trigger_async_id: int = 0
    resource: object = None


@dataclass
class Recorder:
    """Every event in order, plus the init of each id."""

    events: list[Event] = field(default_factory=list)
    inits: dict[int, Event] = field(default_factory=dict)
    hook: AsyncHook | None = None

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        event = Event("init", async_id, threading.get_ident(), type, trigger_async_id, resource)
        self.events.append(event)
        self.inits[async_id] = event

    def _plain(self, name: str) -> Callable[[int], None]:
        def record(async_id: int) -> None:
            self.events.append(Event(name, async_id, threading.get_ident()))

        return record

    def id_of(self, resource: object) -> int:
        """The async id init gave to ``resource``."""
        for event in self.inits.values():
            if event.resource is resource:
                return event.async_id
        raise AssertionError(f"no init for {resource!r}")

    def of(self, async_id: int) -> list[str]:
        """The names of the events of one resource, in order."""
        return [event.name for event in self.events if event.async_id == async_id]

    def types(self) -> list[str]:
        return [event.type for event in self.events if event.name == "init"]


def make_recorder() -> Recorder:
    recorder = Recorder()
    recorder.hook = create_hook(
        init=recorder.init,
        before=recorder._plain("before"),
        after=recorder._plain("after"),
        destroy=recorder._plain("destroy"),
        promise_resolve=recorder._plain("promise_resolve"),
    )
    return recorder


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording hook, enabled for the test."""
    made = make_recorder()
    assert made.hook is not None
    made.hook.enable()
    try:
        yield made
    finally:
        made.hook.disable()


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """What reached sys.unraisablehook during the test (instead of pytest's warning)."""
    caught: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def check_invariants(events: list[Event]) -> None:
    """The lifecycle rules every resource must follow (docs/runtime.md, docs/semantics.md).

    * init comes before any other event of its id;
    * before/after nest properly, per thread;
    * at most one destroy, and nothing after it;
    * promise_resolve of a task comes inside one of its own steps.
    """
    # Resources born before the hook was enabled may still report steps and
    # destroys (as in Node); only ids given out while recording must have an init.
    first_id = min((event.async_id for event in events if event.name == "init"), default=0)
    initialized: dict[int, str] = {}
    destroyed: set[int] = set()
    stacks: dict[int, list[int]] = {}
    for event in events:
        async_id = event.async_id
        if async_id < first_id:
            continue
        assert async_id not in destroyed, f"{event.name} of {async_id} after its destroy"
        if event.name == "init":
            assert async_id not in initialized, f"second init of {async_id}"
            initialized[async_id] = event.type
            continue
        assert async_id in initialized, f"{event.name} of {async_id} before its init"
        stack = stacks.setdefault(event.thread, [])
        if event.name == "before":
            stack.append(async_id)
        elif event.name == "after":
            assert stack, f"after of {async_id} without a before"
            assert stack[-1] == async_id, f"after of {async_id} inside {stack[-1]}"
            stack.pop()
        elif event.name == "destroy":
            destroyed.add(async_id)
        elif event.name == "promise_resolve" and initialized[async_id] == "Task":
            assert async_id in stack, f"task {async_id} resolved outside its own steps"
    for thread, stack in stacks.items():
        assert not stack, f"thread {thread} left {stack} open"
