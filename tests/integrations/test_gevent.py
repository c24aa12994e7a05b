"""Greenlets and gevent: new greenlets start empty; the helpers carry the spawner's context.

gevent's monkey-patching is never applied in this process: the test that
needs it runs in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import gevent  # type: ignore[import-untyped]
import gevent.pool  # type: ignore[import-untyped]
import pytest
from greenlet import greenlet  # type: ignore[import-untyped]

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import InvalidArgTypeError
from async_hooks.integrations.gevent import (
    ContextGreenlet,
    greenlet_in_context,
    spawn,
    spawn_later,
)

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")


def report_then_enter(tag: object) -> str | None:
    """Returns the store the greenlet starts with, after switching away once."""
    seen = request.get_store()
    request.enter_with(f"job {tag}")
    gevent.sleep(0)  # let the other greenlets run in between
    assert request.get_store() == f"job {tag}"
    return seen


# -- raw greenlets ------------------------------------------------------------------


def test_bare_greenlet_starts_with_an_empty_context() -> None:
    child = greenlet(lambda: request.get_store())
    assert request.run("spawner", child.switch) is None


def test_greenlet_in_context_starts_in_the_spawners_context() -> None:
    def work() -> tuple[str | None, str | None]:
        seen = request.get_store()
        request.enter_with("child")
        return seen, request.get_store()

    child = request.run("spawner", greenlet_in_context, work)
    request.enter_with("changed after the spawn")
    try:
        assert child.switch() == ("spawner", "child")
        assert request.get_store() == "changed after the spawn"
    finally:
        request.enter_with(None)


def test_greenlets_switching_back_and_forth_keep_their_own_values() -> None:
    main = greenlet.getcurrent()
    trace: list[tuple[str, str | None]] = []

    def ping_pong(name: str) -> None:
        request.enter_with(name)
        for _ in range(2):
            trace.append((name, request.get_store()))
            main.switch()

    first = request.run("spawner", greenlet_in_context, ping_pong)
    second = request.run("spawner", greenlet_in_context, ping_pong)
    first.switch("first")
    second.switch("second")
    first.switch()
    second.switch()
    assert request.get_store() is None
    assert trace == [("first", "first"), ("second", "second")] * 2


def test_greenlet_in_context_with_a_parent() -> None:
    parent = greenlet.getcurrent()
    child = request.run("spawner", greenlet_in_context, request.get_store, parent)
    assert child.parent is parent
    assert child.switch() == "spawner"


# -- gevent ---------------------------------------------------------------------------


def test_bare_gevent_spawn_loses_the_context() -> None:
    jobs = [
        request.run(f"request-{n}", gevent.spawn, report_then_enter, f"job-{n}") for n in (1, 2)
    ]
    gevent.joinall(jobs, raise_error=True)
    assert [job.value for job in jobs] == [None, None]


def test_spawn_carries_the_spawners_context_per_spawn() -> None:
    jobs = [request.run(f"request-{n}", spawn, report_then_enter, f"job-{n}") for n in (1, 2)]
    gevent.joinall(jobs, raise_error=True)
    assert [job.value for job in jobs] == ["request-1", "request-2"]
    assert all(isinstance(job, ContextGreenlet) for job in jobs)
    assert request.get_store() is None


def test_spawn_later_captures_the_context_at_the_call() -> None:
    job = request.run("scheduler", spawn_later, 0.001, report_then_enter, "late")
    request.enter_with("changed before it started")
    try:
        job.join(timeout=5)
        assert job.successful()
        assert job.value == "scheduler"
    finally:
        request.enter_with(None)


def test_pool_with_context_greenlets_captures_each_spawn_not_the_pool() -> None:
    pool = request.run("pool creation", gevent.pool.Pool, 1, greenlet_class=ContextGreenlet)
    jobs = [
        request.run(f"request-{n}", pool.spawn, report_then_enter, f"job-{n}") for n in (1, 2, 3)
    ]
    pool.join(timeout=5, raise_error=True)
    # One worker slot, three consecutive jobs: none sees the previous job's value.
    assert [job.value for job in jobs] == ["request-1", "request-2", "request-3"]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidArgTypeError, match='"run" argument must be callable'):
        greenlet_in_context(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"run" argument must be callable'):
        spawn("not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"run" argument must be callable'):
        spawn_later(0, None)  # type: ignore[arg-type]


# -- with monkey-patching, in a subprocess ---------------------------------------------

_PATCHED_PROGRAM = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json
    import socket
    import time

    import gevent
    from gevent.server import StreamServer

    from async_hooks import AsyncLocalStorage
    from async_hooks.integrations.gevent import spawn

    request = AsyncLocalStorage(name="request")


    def echo(connection, address):
        with connection:
            connection.sendall(connection.recv(1024))


    server = StreamServer(("127.0.0.1", 0), echo)
    server.start()
    port = server.server_port


    def call_backend():
        # Patched socket and sleep: each switches to the other greenlets.
        time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(request.get_store().encode() if request.get_store() else b"-")
            echoed = connection.recv(1024).decode()
        return [echoed, request.get_store()]


    def handle(name, spawner):
        request.enter_with(name)
        child = spawner(call_backend)
        return child.get(timeout=5)


    results = {}
    for label, spawner in (("bare", gevent.spawn), ("helper", spawn)):
        handlers = [gevent.spawn(handle, f"request-{n}", spawner) for n in (1, 2, 3)]
        gevent.joinall(handlers, raise_error=True)
        results[label] = [handler.value for handler in handlers]
    server.stop()
    print(json.dumps({"patched": monkey.is_module_patched("socket"), "results": results}))
    """
)


def test_under_monkey_patching_spawned_greenlets_keep_their_request() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _PATCHED_PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["patched"] is True
    assert report["results"]["bare"] == [["-", None]] * 3
    assert report["results"]["helper"] == [[f"request-{n}", f"request-{n}"] for n in (1, 2, 3)]


def test_greenlets_follow_the_stores_thread_policy() -> None:
    private: AsyncLocalStorage[str] = AsyncLocalStorage(
        name="greenlet-private", default="unset", crosses=Crossing.NONE
    )

    def both() -> tuple[str | None, str | None]:
        return request.get_store(), private.get_store()

    def spawner() -> tuple[Any, Any]:
        private.enter_with("stays with its owner")
        raw = greenlet_in_context(both).switch()
        job = spawn(both)
        job.join(timeout=5)
        return raw, job.value

    assert request.run("shared", spawner) == (("shared", "unset"), ("shared", "unset"))
