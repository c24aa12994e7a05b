"""Shared fixtures: every asynchronous test runs on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

T = TypeVar("T")

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

RunAsync = Callable[[Callable[[], Coroutine[Any, Any, T]]], T]


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
