"""The Dramatiq actors of the tests: imported by the test process (to send) and the worker (to run).

The worker is ``dramatiq integrations._dramatiq_app --processes 1 --threads 1``:
every message is processed by one thread of one process, where a leak would
show. Each actor reports what it sees as JSON onto a Redis list named after
the token the test gave it, so failing and retried calls report too. The
broker's URL comes from ``ASYNC_HOOKS_TEST_BROKER``, read at import: the test
imports this module once its Redis runs.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.dramatiq import ContextMiddleware, message_id, parent_message_id
from async_hooks.integrations.opentelemetry import opentelemetry_context
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

URL = os.environ.get("ASYNC_HOOKS_TEST_BROKER", "redis://127.0.0.1:1/0")
broker = RedisBroker(url=URL)  # type: ignore[no-untyped-call]  # its __init__ is untyped
broker.add_middleware(ContextMiddleware())
dramatiq.set_broker(broker)

# Declared stores: they cross to the worker by name.
tenant = AsyncLocalStorage[str](name="dramatiq_tenant", crosses=Crossing.ALL, serializer=JSON)
user = AsyncLocalStorage[dict[str, Any]](
    name="dramatiq_user", crosses=Crossing.REMOTE, serializer=JSON
)
# The default policy (in process only): never leaves this process.
local_only = AsyncLocalStorage[str](name="dramatiq_local_only")
# What any library might keep in a bare ContextVar.
plain_var: ContextVar[str | None] = ContextVar("dramatiq_plain_var", default=None)

assert opentelemetry_context.name  # live here, so that the worker can enter it


def connection() -> redis.Redis:
    return redis.Redis.from_url(URL)


def reports_key(token: str) -> str:
    return f"async_hooks_tests:reports:{token}"


def current_context() -> dict[str, Any]:
    return {
        "tenant": tenant.get_store(),
        "user": user.get_store(),
        "local_only": local_only.get_store(),
        "request_id": request_id.get_store(),
        "plain_var": plain_var.get(),
        "message_id": message_id.get_store(),
        "parent_message_id": parent_message_id.get_store(),
    }


def report(token: str, **extra: Any) -> None:
    connection().rpush(reports_key(token), json.dumps({**current_context(), **extra}))


# -- the actors ------------------------------------------------------------------------


@dramatiq.actor(max_retries=0)
def read_context(token: str) -> None:
    report(token)


@dramatiq.actor(max_retries=0)
def set_everything(token: str, value: str) -> None:
    """Sets our stores and a bare ContextVar; the next message must not see them."""
    tenant.enter_with(value)
    request_id.enter_with(value)
    plain_var.set(value)
    report(token)


@dramatiq.actor(max_retries=0)
def set_everything_and_fail(token: str, value: str) -> None:
    set_everything.fn(token, value)
    raise RuntimeError(f"actor failed after entering {value!r}")


@dramatiq.actor(max_retries=1, min_backoff=1, max_backoff=1)
def fail_first_try(token: str) -> None:
    """Reports every try; the first one fails (the Retries middleware sends it again)."""
    tries = connection().incr(f"async_hooks_tests:tries:{token}")
    report(token, tries=tries)
    if tries == 1:
        plain_var.set("set by the first try")
        raise RuntimeError("first try fails")


@dramatiq.actor(max_retries=0)
def send_child(token: str) -> None:
    report(token)
    read_context.send(token)


@dramatiq.actor(max_retries=0)
def read_span(token: str) -> None:
    """The current span, and the parent of a span started here (OpenTelemetry's context)."""
    current = trace.get_current_span().get_span_context()
    with TracerProvider().get_tracer("dramatiq").start_as_current_span("actor") as span:
        parent = span.parent  # type: ignore[attr-defined]  # the SDK's Span has it
    report(
        token,
        trace_id=format(current.trace_id, "032x"),
        span_id=format(current.span_id, "016x"),
        is_remote=current.is_remote,
        parent_span_id=None if parent is None else format(parent.span_id, "016x"),
    )
