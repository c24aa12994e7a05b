"""``Thread.start`` shared by install() and tracking (the private ``_thread_start``).

Tested through the faces: whatever the order of ``install()``,
``hook.enable()``, ``uninstall()`` and ``hook.disable()``, a thread started
at any point gets exactly the features on at that moment, both together
when both are on, and once both are off every patched callable is the
original object again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
import uvloop

from async_hooks import AsyncLocalStorage, create_hook, execution_async_id
from async_hooks.propagation import ContextThread, install, installed, uninstall

store: AsyncLocalStorage[str] = AsyncLocalStorage(name="test_thread_start.store")

_LOOP_METHODS = (
    "create_task",
    "create_future",
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "run_in_executor",
    "create_server",
    "create_connection",
)


def patched_callables() -> dict[str, object]:
    """Everything install() or tracking replaces, as the names resolve now."""
    found: dict[str, object] = {
        "Thread.start": threading.Thread.start,
        "ThreadPoolExecutor.submit": ThreadPoolExecutor.submit,
        "ProcessPoolExecutor.submit": ProcessPoolExecutor.submit,
        "Future.add_done_callback": concurrent.futures.Future.add_done_callback,
        "asyncio.to_thread": asyncio.to_thread,
        "Handle.cancel": asyncio.Handle.cancel,
        "Server.close": asyncio.base_events.Server.close,
    }
    for owner in (asyncio.BaseEventLoop, uvloop.Loop):
        for name in _LOOP_METHODS:
            found[f"{owner.__name__}.{name}"] = getattr(owner, name)
    return found


class Switches:
    """install() and one hook, switched by name, and a thread started after each switch."""

    def __init__(self) -> None:
        self.inits: dict[int, object] = {}
        self.hook = create_hook(init=self._init)

    def _init(self, async_id: int, type: str, trigger: int, resource: object) -> None:
        self.inits[async_id] = resource

    def switch(self, step: str) -> None:
        {
            "install": install,
            "uninstall": uninstall,
            "enable": self.hook.enable,
            "disable": self.hook.disable,
        }[step]()

    def start(self, factory: type[threading.Thread]) -> tuple[str | None, int, int | None]:
        """What a thread sees of the store and of its ids, and the id init gave it."""
        seen: list[tuple[str | None, int]] = []
        thread = factory(target=lambda: seen.append((store.get_store(), execution_async_id())))
        thread.start()
        thread.join()
        ids = [async_id for async_id, resource in self.inits.items() if resource is thread]
        assert len(ids) <= 1
        assert "run" not in vars(thread)
        return (*seen[0], ids[0] if ids else None)


def _orders() -> Iterator[tuple[str, ...]]:
    for order in itertools.permutations(("install", "enable", "uninstall", "disable")):
        if order.index("install") < order.index("uninstall") and order.index(
            "enable"
        ) < order.index("disable"):
            yield order


@pytest.fixture
def switches() -> Iterator[Switches]:
    made = Switches()
    try:
        yield made
    finally:
        made.hook.disable()
        uninstall()


@pytest.mark.no_hooks
@pytest.mark.parametrize("order", list(_orders()), ids="-".join)
def test_every_order_gives_each_thread_the_features_on_then(
    switches: Switches, order: tuple[str, ...]
) -> None:
    store.enter_with("starter")
    installed_now = tracking = False
    for step in order:
        switches.switch(step)
        installed_now = installed()
        tracking = switches.hook.enabled
        value, seen_id, init_id = switches.start(threading.Thread)
        assert value == ("starter" if installed_now else None), step
        if tracking:
            # Its ids inside run(), also when it runs in the starter's context.
            assert init_id is not None, step
            assert seen_id == init_id, step
        else:
            assert init_id is None, step
            assert seen_id == 1, step
        value, seen_id, init_id = switches.start(ContextThread)
        assert value == "starter", step
        assert seen_id == (init_id if tracking else 1), step
    assert not installed_now
    assert not tracking


@pytest.mark.no_hooks
@pytest.mark.parametrize("order", list(_orders()), ids="-".join)
def test_every_order_puts_every_original_back(switches: Switches, order: tuple[str, ...]) -> None:
    originals = patched_callables()
    for step in order:
        switches.switch(step)
    after = patched_callables()
    assert [name for name in originals if after[name] is not originals[name]] == []


def test_pool_workers_start_empty_also_while_tracking(switches: Switches) -> None:
    initialized: list[str | None] = []
    switches.switch("enable")
    switches.switch("install")

    def initializer() -> None:
        initialized.append(store.get_store())

    store.enter_with("starter")
    with ThreadPoolExecutor(max_workers=1, initializer=initializer) as pool:
        assert pool.submit(store.get_store).result() == "starter"
    assert initialized == [None]


def test_a_start_that_raises_leaves_the_thread_as_it_was(switches: Switches) -> None:
    switches.switch("install")
    switches.switch("enable")
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match="once"):
        thread.start()
    assert "run" not in vars(thread)


@pytest.mark.no_hooks
def test_a_wrapper_on_top_of_ours_keeps_working_and_ours_goes_inert(
    switches: Switches,
) -> None:
    original = threading.Thread.start
    switches.switch("install")
    ours = threading.Thread.start
    calls: list[str] = []

    def theirs(self: threading.Thread) -> None:
        calls.append(self.name)
        ours(self)

    threading.Thread.start = theirs  # type: ignore[method-assign]
    try:
        switches.switch("uninstall")
        assert threading.Thread.start is theirs
        store.enter_with("starter")
        assert switches.start(threading.Thread) == (None, 1, None)
        # Tracking reuses the one stranded under theirs instead of stacking another.
        switches.switch("enable")
        assert threading.Thread.start is theirs
        value, seen_id, init_id = switches.start(threading.Thread)
        assert value is None
        assert seen_id == init_id is not None
        switches.switch("disable")
        assert len(calls) == 2
    finally:
        # They uninstall themselves by putting back what they found: ours.
        threading.Thread.start = ours  # type: ignore[method-assign]
    # Ours is on top again: the next switch takes it back, the last puts the original back.
    switches.switch("install")
    switches.switch("uninstall")
    assert threading.Thread.start is original
