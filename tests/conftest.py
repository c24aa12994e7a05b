"""Shared fixtures: every asynchronous test runs on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import uvloop

from async_hooks import AsyncHook, create_hook
from async_hooks.lowlevel import EventChecker, flush_pending_destroys, record_creation_sites

_CHECKER = pytest.StashKey[tuple[EventChecker, AsyncHook]]()

T = TypeVar("T")

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

RunAsync = Callable[[Callable[[], Coroutine[Any, Any, T]]], T]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--check-events",
        action="store_true",
        help="keep an EventChecker hook enabled for the whole run and fail on any broken "
        "lifecycle rule (tests that need no hook enabled are skipped)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_hooks: the test needs that no hook is enabled (skipped by --check-events)"
    )
    if config.getoption("--check-events"):
        checker = EventChecker()
        config.stash[_CHECKER] = (checker, create_hook(checker).enable())


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _CHECKER in item.config.stash and item.get_closest_marker("no_hooks"):
        pytest.skip("needs that no hook is enabled, and --check-events keeps one on")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _CHECKER in session.config.stash:
        checker, hook = session.config.stash[_CHECKER]
        hook.disable()
        flush_pending_destroys()
        if checker.count:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            print("\n--check-events found broken lifecycle rules:")
            print("\n".join(f"  {violation}" for violation in checker.violations[:50]))
            print(f"  ({checker.count} in all)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test in its own copy of the context.

    Tests of enter_with at top level change the context they run in; without
    this, those changes would stay in the main thread's context and reach
    every later test.
    """
    for item in items:
        item.runtest = functools.partial(_in_a_copy_of_the_context, item.runtest)  # type: ignore[method-assign]


def _in_a_copy_of_the_context(runtest: Callable[[], None]) -> None:
    contextvars.copy_context().run(runtest)


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def run_async(loop_name: str) -> RunAsync[Any]:
    """``run_async(main)`` runs ``main()`` to completion on a fresh loop of the current kind."""
    factory = LOOP_FACTORIES[loop_name]

    def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main())

    return run


@pytest.fixture
def creation_sites() -> Iterator[None]:
    """Creation sites recorded for the test (off by default: they cost a stack walk each)."""
    record_creation_sites(True)
    try:
        yield
    finally:
        record_creation_sites(False)


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 for the test module: its URL."""
    from .integrations._processes import start_redis, stop  # imports redis: only when used

    process, url = start_redis()
    try:
        yield url
    finally:
        stop(process)
