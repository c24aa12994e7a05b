"""EventChecker: a hook that checks the lifecycle rules, fed real and broken streams."""

from __future__ import annotations

import asyncio
import threading

import pytest

from async_hooks import AsyncResource, create_hook
from async_hooks.lowlevel import EventChecker, new_async_id


def problems(checker: EventChecker) -> list[str]:
    return [violation.problem for violation in checker.violations]


def test_a_real_program_keeps_every_rule() -> None:
    checker = EventChecker()
    hook = create_hook(checker).enable()
    try:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: None)
            loop.call_later(0.001, lambda: None)
            await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(5)))
            await loop.run_in_executor(None, lambda: None)
            AsyncResource("Embedder").run_in_async_scope(lambda: None)

        asyncio.run(main())
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
    finally:
        hook.disable()
    checker.raise_if_broken()
    assert checker.count == 0


def test_each_broken_rule_is_named() -> None:
    checker = EventChecker()
    first, second, third = new_async_id(), new_async_id(), new_async_id()
    checker.before(first)  # no init yet
    checker.after(first)
    checker.init(second, "Handle", 1, object())  # top level is executing: trigger 1 is right
    checker.init(second, "Handle", 1, object())
    checker.before(second)
    checker.destroy(second)  # inside its own callback
    checker.after(second)  # after its destroy
    checker.init(third, "Future", 1, object())
    checker.promise_resolve(third)
    checker.promise_resolve(third)
    checker.after(third)  # no before
    assert problems(checker) == [
        "before before its init",
        "after before its init",
        "a second init",
        "destroy inside the resource's own callback",
        "after after its destroy",
        "a second promise_resolve",
        "after without a before on this thread",
    ]
    with pytest.raises(AssertionError, match="7 lifecycle rule"):
        checker.raise_if_broken()


def test_a_wrong_trigger_is_reported_but_a_live_cause_is_accepted() -> None:
    checker = EventChecker()
    server, connection, stray = new_async_id(), new_async_id(), new_async_id()
    checker.init(server, "Server", 1, object())
    checker.init(connection, "Transport", server, object())  # caused by a live server
    checker.init(stray, "Handle", 999_999_999, object())
    assert problems(checker) == ["Handle triggered by 999999999, but 1 was executing"]


def test_pairs_nest_per_thread() -> None:
    checker = EventChecker()
    outer, inner = new_async_id(), new_async_id()
    checker.init(outer, "Task", 1, object())
    checker.init(inner, "Handle", 1, object())
    checker.before(outer)

    # Another thread runs its own callback meanwhile: its pairs are its own.
    def run_inner() -> None:
        checker.before(inner)
        checker.after(inner)

    worker = threading.Thread(target=run_inner)
    worker.start()
    worker.join()
    checker.after(outer)
    assert checker.count == 0
    checker.before(outer)
    checker.before(inner)
    checker.after(outer)  # inner is still open
    assert problems(checker) == [f"after inside the callback of {inner}"]


def test_an_embedder_may_destroy_its_resource_inside_its_scope() -> None:
    checker = EventChecker()
    hook = create_hook(checker).enable()
    try:
        resource = AsyncResource("Embedder")
        resource.run_in_async_scope(resource.emit_destroy)
    finally:
        hook.disable()
    assert checker.count == 0
