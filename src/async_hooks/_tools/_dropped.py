"""Work an event loop drops when it closes: timers and callbacks that never ran.

``asyncio.run()`` closes its loop when ``main()`` returns, and a timer still
scheduled then is silently discarded: the program exits, and the leak that
would keep a Node process alive goes unnoticed. While watching, each loop's
``close()`` first records its scheduled, uncancelled handles and its
pending tasks, with everything :func:`why_running` says about them.

Use::

    watcher = DroppedWork(history).start()
    asyncio.run(main())
    watcher.entries  # one why-running entry per dropped timer, handle or task
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Self

from .._active import ActiveResource, get_active_resources
from .._patching import Patches
from .._runtime._asyncio import loop_classes
from ._history import ResourceHistory
from ._why_running import describe

DROPPED_STATE = "never ran: its event loop was closed"
# A program that runs many loops (a test suite) may drop many timers: the
# first ones are kept, the others only counted.
_KEPT = 1000


class DroppedWork:
    """Records, at each ``loop.close()``, the pending work the loop throws away."""

    def __init__(
        self,
        history: ResourceHistory | None = None,
        *,
        stores: tuple[str, ...] | None = None,
        repr_limit: int = 1000,
    ) -> None:
        self.history = history
        self.stores = stores
        self.repr_limit = repr_limit
        #: why-running entries of everything dropped so far, oldest first.
        self.entries: list[dict[str, Any]] = []
        self._patches = Patches()
        self._seen: set[int] = set()
        #: How many dropped resources were left out of ``entries`` (past the first 1,000).
        self.omitted = 0

    def start(self) -> Self:
        for cls in loop_classes():
            self._patches.apply(cls, "close", self._wrap_close)
        return self

    def close(self) -> None:
        self._patches.restore_all()

    def _wrap_close(self, original: Callable[..., None]) -> Callable[..., None]:
        def close(loop: asyncio.AbstractEventLoop) -> None:
            if not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(Exception):  # never break the program's close()
                    self._record(loop)
            original(loop)

        return close

    def _record(self, loop: asyncio.AbstractEventLoop) -> None:
        dropped = [
            active
            for active in get_active_resources()
            if active.async_id not in self._seen and _dropped_by(active, loop)
        ]
        # uvloop's handles do not name their loop: one closing after another
        # must not report the first one's again.
        self._seen.update(active.async_id for active in dropped if active.async_id is not None)
        entries = describe(dropped, stores=self.stores, history=self.history, limit=self.repr_limit)
        for entry in entries:
            entry["state"] = DROPPED_STATE
        room = _KEPT - len(self.entries)
        self.entries.extend(entries[: max(room, 0)])
        self.omitted += max(len(entries) - max(room, 0), 0)


def _dropped_by(active: ActiveResource, loop: asyncio.AbstractEventLoop) -> bool:
    resource = active.resource
    if active.async_id is None or resource is None:
        return False
    if isinstance(resource, asyncio.Future):
        return isinstance(resource, asyncio.Task) and resource.get_loop() is loop
    if active.type not in ("Handle", "TimerHandle"):
        return False
    owner = getattr(resource, "_loop", loop)  # uvloop's handles do not say
    cancelled = getattr(resource, "cancelled", None)
    return owner is loop and not (callable(cancelled) and cancelled())
