"""Fixtures for the trio tracking tests: a hook that records trio task events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from async_hooks import AsyncHook, create_hook, execution_async_id
from async_hooks.trio import TRIO_TASK_TYPE


@dataclass
class Init:
    async_id: int
    trigger_async_id: int
    resource: object


@dataclass
class TrioEvents:
    """The events of trio tasks only: other runtimes' resources are filtered out."""

    inits: dict[int, Init] = field(default_factory=dict)
    # (event, async id, execution_async_id() inside the callback), in order.
    log: list[tuple[str, int, int]] = field(default_factory=list)

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == TRIO_TASK_TYPE:
            self.inits[async_id] = Init(async_id, trigger_async_id, resource)
            self.log.append(("init", async_id, execution_async_id()))

    def _record(self, event: str, async_id: int) -> None:
        if async_id in self.inits:
            self.log.append((event, async_id, execution_async_id()))

    def before(self, async_id: int) -> None:
        self._record("before", async_id)

    def after(self, async_id: int) -> None:
        self._record("after", async_id)

    def destroy(self, async_id: int) -> None:
        self._record("destroy", async_id)

    def events_of(self, async_id: int) -> list[str]:
        return [event for event, event_id, _ in self.log if event_id == async_id]

    def id_of(self, resource: object) -> int:
        (found,) = [init.async_id for init in self.inits.values() if init.resource is resource]
        return found


@pytest.fixture
def trio_events() -> Iterator[TrioEvents]:
    """A hook recording trio task events, enabled for the test and always disabled after."""
    events = TrioEvents()
    hook: AsyncHook = create_hook(events)
    hook.enable()
    try:
        yield events
    finally:
        hook.disable()
