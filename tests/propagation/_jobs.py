"""Stores and job functions shared by the propagation tests.

Module level on purpose: a spawned worker process imports this module to
unpickle a job, and so creates the same declared stores under the same names.
"""

from __future__ import annotations

import os
from typing import Any

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.propagation import JSON

#: The default policy: crosses threads and pools, never processes.
local: AsyncLocalStorage[Any] = AsyncLocalStorage(name="tests.local")
#: Declared for every boundary, processes and machines included.
shared: AsyncLocalStorage[Any] = AsyncLocalStorage(
    name="tests.shared", crosses=Crossing.ALL, serializer=JSON
)
#: Must never reach background work.
secret: AsyncLocalStorage[Any] = AsyncLocalStorage(
    name="tests.secret", default="no secret", crosses=Crossing.NONE
)

STORES = (local, shared, secret)
Seen = tuple[Any, Any, Any]


def seen() -> Seen:
    """What the current job sees of the three stores."""
    return local.get_store(), shared.get_store(), secret.get_store()


def seen_then_pollute(marker: Any = "polluted") -> Seen:
    """``seen()``, then enter a value in each store, as a careless job would."""
    result = seen()
    for store in STORES:
        store.enter_with(marker)
    return result


def seen_with_pid(marker: Any = "polluted") -> tuple[Seen, int]:
    return seen_then_pollute(marker), os.getpid()


def enter_all(local_value: Any, shared_value: Any, secret_value: Any) -> None:
    local.enter_with(local_value)
    shared.enter_with(shared_value)
    secret.enter_with(secret_value)


def clear_all() -> None:
    for store in STORES:
        store.disable()


def report(queue: Any) -> None:
    """Target of a ``multiprocessing.Process``: send what it sees to the parent."""
    queue.put(seen())
