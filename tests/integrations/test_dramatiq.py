"""Dramatiq: declared stores reach a real worker, for exactly one message's processing.

A real redis-server and a real ``dramatiq`` worker (one process, one worker
thread, so consecutive messages share both) run on 127.0.0.1 for the whole
module, with ``ContextMiddleware`` on the broker of both sides. Actors
report what they see onto Redis lists (``_dramatiq_app.report``).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO
from opentelemetry import trace
from opentelemetry.context import Context

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import StoreSerializationError
from async_hooks.integrations.dramatiq import (
    PARENT_MESSAGE_ID_OPTION,
    REQUEST_ID_OPTION,
    STORES_OPTION,
    ContextMiddleware,
    context_options,
    message_id,
)
from async_hooks.integrations.opentelemetry import opentelemetry_context
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

from ._processes import start_worker, stop, wait_until, worker_env

REPORT_TIMEOUT = 10
_tokens = itertools.count()

# Declared here only: the worker does not know it (it never gets a value).
strict = AsyncLocalStorage[object](name="dramatiq_strict", crosses=Crossing.REMOTE, serializer=JSON)


@pytest.fixture(scope="module")
def actors(broker_url: str) -> Iterator[ModuleType]:
    """The actors' module, imported here once its broker's Redis runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASYNC_HOOKS_TEST_BROKER", broker_url)
        module = importlib.import_module(f"{__package__}._dramatiq_app")
        yield module
        module.broker.close()


@pytest.fixture(scope="module")
def worker(
    broker_url: str, actors: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A running ``dramatiq`` worker; yields the path of its log (its stderr)."""
    log_path = tmp_path_factory.mktemp("dramatiq") / "worker.log"
    command = [sys.executable, "-m", "dramatiq", "integrations._dramatiq_app"]
    command += ["--processes", "1", "--threads", "1", "--worker-shutdown-timeout", "5000"]
    # The worker's OpenTelemetry keeps its context in our store.
    env = worker_env(broker_url, OTEL_PYTHON_CONTEXT="async_hooks")
    process = start_worker(command, env, log_path)
    try:
        token = send(actors.read_context)
        wait_until(lambda: _reported(actors, process, token), timeout=30, what="dramatiq worker")
        yield log_path
    finally:
        stop(process)


def _reported(actors: ModuleType, process: subprocess.Popen[bytes], token: str) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"dramatiq worker exited with status {process.returncode}")
    return bool(actors.connection().llen(actors.reports_key(token)))


def send(actor: Any, *args: Any, **options: Any) -> str:
    """Send ``actor(token, *args)``; the token under which its calls report."""
    token = f"dramatiq-{next(_tokens)}"
    actor.send_with_options(args=(token, *args), **options)
    return token


def reports(actors: ModuleType, token: str, count: int = 1) -> list[dict[str, Any]]:
    """The next ``count`` reports of the calls of ``token``."""
    client = actors.connection()
    seen = []
    for _ in range(count):
        item = client.blpop([actors.reports_key(token)], timeout=REPORT_TIMEOUT)
        assert item is not None, f"no report for {token} after {REPORT_TIMEOUT} s"
        seen.append(json.loads(item[1]))
    return seen


def run(actors: ModuleType, actor: Any, *args: Any, **options: Any) -> dict[str, Any]:
    [seen] = reports(actors, send(actor, *args, **options))
    return seen


def test_declared_stores_and_request_id_cross_to_the_worker(
    worker: Path, actors: ModuleType
) -> None:
    with (
        actors.tenant.with_scope("acme"),
        actors.user.with_scope({"id": 7, "roles": ["admin"]}),
        actors.local_only.with_scope("never leaves this process"),
        request_id.with_scope("req-123"),
    ):
        seen = run(actors, actors.read_context)
    assert (seen["tenant"], seen["user"], seen["request_id"]) == (
        "acme",
        {"id": 7, "roles": ["admin"]},
        "req-123",
    )
    assert seen["local_only"] is None
    assert seen["message_id"] is not None
    assert seen["parent_message_id"] is None  # sent by no actor


def test_nothing_reaches_the_next_message_on_the_same_thread(
    worker: Path, actors: ModuleType
) -> None:
    with actors.tenant.with_scope("acme"), request_id.with_scope("req-1"):
        assert (
            run(actors, actors.set_everything, "set by the actor")["tenant"] == "set by the actor"
        )
    seen = run(actors, actors.read_context)
    assert (seen["tenant"], seen["request_id"], seen["plain_var"]) == (None, None, None)


def test_a_failing_actor_leaks_nothing(worker: Path, actors: ModuleType) -> None:
    assert run(actors, actors.set_everything_and_fail, "poison")["plain_var"] == "poison"
    seen = run(actors, actors.read_context)
    assert (seen["tenant"], seen["request_id"], seen["plain_var"]) == (None, None, None)


def test_each_try_of_a_retried_message_gets_the_context(worker: Path, actors: ModuleType) -> None:
    with actors.tenant.with_scope("acme"), request_id.with_scope("req-retry"):
        token = send(actors.fail_first_try)
    tries = reports(actors, token, count=2)
    assert [(t["tries"], t["tenant"], t["request_id"]) for t in tries] == [
        (1, "acme", "req-retry"),
        (2, "acme", "req-retry"),
    ]
    # Each try is processed on its own: the second does not see the first's sets.
    assert tries[1]["plain_var"] is None
    assert tries[0]["message_id"] == tries[1]["message_id"]


def test_a_message_sent_by_an_actor_carries_the_context_and_its_parent(
    worker: Path, actors: ModuleType
) -> None:
    with actors.tenant.with_scope("acme"), request_id.with_scope("req-child"):
        token = send(actors.send_child)
    parent, child = reports(actors, token, count=2)
    assert (child["tenant"], child["request_id"]) == ("acme", "req-child")
    assert child["parent_message_id"] == parent["message_id"]


def test_the_messages_of_a_pipeline_all_get_the_context(worker: Path, actors: ModuleType) -> None:
    token = f"dramatiq-{next(_tokens)}"
    steps = [
        actors.read_context.message_with_options(args=(token,), pipe_ignore=True) for _ in range(3)
    ]
    with actors.tenant.with_scope("acme"), request_id.with_scope("req-pipe"):
        dramatiq.pipeline(steps).run()  # type: ignore[no-untyped-call]  # run() is untyped
    seen = reports(actors, token, count=3)
    assert [(step["tenant"], step["request_id"]) for step in seen] == [("acme", "req-pipe")] * 3
    # Dramatiq sends the next step itself, after the previous one returned.
    assert [step["parent_message_id"] for step in seen] == [
        None,
        seen[0]["message_id"],
        seen[1]["message_id"],
    ]


@pytest.mark.parametrize(
    ("options", "warning"),
    [
        ({STORES_OPTION: "not a mapping"}, "in the Dramatiq message options is not a mapping"),
        ({STORES_OPTION: {"no_such_store": "1"}}, "'no_such_store'"),
        ({STORES_OPTION: {"dramatiq_tenant": "{not json"}}, "'dramatiq_tenant' does not load"),
        ({REQUEST_ID_OPTION: "bad id\nforged"}, "request id in the Dramatiq message options"),
        ({PARENT_MESSAGE_ID_OPTION: 3}, "parent message id in the Dramatiq message options"),
    ],
)
def test_a_malformed_carrier_is_skipped_with_a_warning_and_the_actor_runs(
    worker: Path, actors: ModuleType, options: dict[str, Any], warning: str
) -> None:
    seen = run(actors, actors.read_context, **options)
    assert (seen["tenant"], seen["request_id"], seen["parent_message_id"]) == (None, None, None)
    wait_until(lambda: warning in worker.read_text(), timeout=5, what="the warning")
    assert "StoreSerializationWarning" in worker.read_text()


def test_opentelemetrys_context_crosses_into_the_actor(worker: Path, actors: ModuleType) -> None:
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    # Set as OpenTelemetry's own attach would under OTEL_PYTHON_CONTEXT=async_hooks.
    with opentelemetry_context.with_scope(trace.set_span_in_context(span, Context())):
        seen = run(actors, actors.read_span)
    assert (seen["trace_id"], seen["span_id"], seen["is_remote"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        True,
    )
    assert seen["parent_span_id"] == "b7ad6b7169203331"  # a span there is a child


# -- without a worker ------------------------------------------------------------


def test_the_options_hold_only_what_crosses_remote(actors: ModuleType) -> None:
    assert context_options() == {}
    with actors.local_only.with_scope("private"):
        assert context_options() == {}
    with actors.tenant.with_scope("acme"), request_id.with_scope("req-9"):
        assert context_options() == {
            STORES_OPTION: {"dramatiq_tenant": '"acme"'},
            REQUEST_ID_OPTION: "req-9",
        }
        message = actors.read_context.message("-")
        ContextMiddleware().before_enqueue(actors.broker, message, 0)
        assert message.options[REQUEST_ID_OPTION] == "req-9"
        # Options the message has already (passed by the caller, or those of
        # a message being retried) win over ours.
        mine = actors.read_context.message_with_options(args=("-",), async_hooks_request_id="mine")
        ContextMiddleware().before_enqueue(actors.broker, mine, 0)
        assert mine.options[REQUEST_ID_OPTION] == "mine"
    with message_id.with_scope("running-message"):
        assert context_options() == {PARENT_MESSAGE_ID_OPTION: "running-message"}


def test_an_unserializable_store_fails_the_send_and_names_the_store(actors: ModuleType) -> None:
    # Dramatiq swallows what a before_enqueue hook raises, but for its own
    # MiddlewareError: the error must still reach the sender.
    with (
        strict.with_scope(object()),
        pytest.raises(StoreSerializationError, match="dramatiq_strict"),
    ):
        actors.read_context.send("-")


def test_an_async_actor_sees_the_stores_and_leaks_nothing(actors: ModuleType) -> None:
    # Dramatiq runs async actors on the AsyncIO middleware's loop thread, in
    # a task made from a copy of the worker thread's context: in process
    # here, on a StubBroker.
    broker = StubBroker()
    broker.add_middleware(AsyncIO())
    broker.add_middleware(ContextMiddleware())
    seen: list[tuple[str, str | None, str | None]] = []

    async def read_and_set(label: str) -> None:
        await asyncio.sleep(0)
        seen.append((label, actors.tenant.get_store(), actors.plain_var.get()))
        actors.plain_var.set("set by the actor")

    actor = dramatiq.actor(broker=broker, actor_name="async_read_and_set")(read_and_set)
    with actors.tenant.with_scope("acme"):
        actor.send("sent in a scope")
    actor.send("sent outside")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        broker.join(actor.queue_name)
        worker.join()
    finally:
        worker.stop()
    # Whichever runs first, the other does not see what it set.
    assert sorted(seen, key=lambda call: call[0]) == [
        ("sent in a scope", "acme", None),
        ("sent outside", None, None),
    ]


def test_context_middleware_is_a_dramatiq_middleware() -> None:
    assert issubclass(ContextMiddleware, dramatiq.Middleware)
