"""The RQ jobs of the tests: imported by the test process (to enqueue) and the worker (to run).

The worker is ``rq worker --job-class async_hooks.integrations.rq.ContextJob``
with a ``SimpleWorker``: every job runs in one process and one thread, where
a leak would show. Each job reports what it sees as JSON onto a Redis list
named after the token the test gave it, so failing and retried runs report
too. The Redis URL comes from ``ASYNC_HOOKS_TEST_BROKER``.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from typing import Any

import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from rq import Queue, Retry
from rq.job import Job

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.opentelemetry import opentelemetry_context
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.rq import ContextJob, job_id, parent_job_id
from async_hooks.propagation import JSON

# Declared stores: they cross to the worker by name.
tenant = AsyncLocalStorage[str](name="rq_tenant", crosses=Crossing.ALL, serializer=JSON)
user = AsyncLocalStorage[dict[str, Any]](name="rq_user", crosses=Crossing.REMOTE, serializer=JSON)
# The default policy (in process only): never leaves this process.
local_only = AsyncLocalStorage[str](name="rq_local_only")
# What any library might keep in a bare ContextVar.
plain_var: ContextVar[str | None] = ContextVar("rq_plain_var", default=None)

assert opentelemetry_context.name  # live here, so that the worker can enter it


def connection() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("ASYNC_HOOKS_TEST_BROKER", "redis://127.0.0.1:1/0"))


def queue() -> Queue:
    return Queue("async_hooks_tests", connection=connection(), job_class=ContextJob)


def reports_key(token: str) -> str:
    return f"async_hooks_tests:reports:{token}"


def current_context() -> dict[str, Any]:
    return {
        "tenant": tenant.get_store(),
        "user": user.get_store(),
        "local_only": local_only.get_store(),
        "request_id": request_id.get_store(),
        "plain_var": plain_var.get(),
        "job_id": job_id.get_store(),
        "parent_job_id": parent_job_id.get_store(),
    }


def report(token: str, **extra: Any) -> None:
    connection().rpush(reports_key(token), json.dumps({**current_context(), **extra}))


# -- the jobs ------------------------------------------------------------------------


def read_context(token: str) -> None:
    report(token)


def set_everything(token: str, value: str) -> None:
    """Sets our stores and a bare ContextVar; the next job must not see them."""
    tenant.enter_with(value)
    request_id.enter_with(value)
    plain_var.set(value)
    report(token)


def set_everything_and_fail(token: str, value: str) -> None:
    set_everything(token, value)
    raise RuntimeError(f"job failed after entering {value!r}")


def fail_first_try(token: str) -> None:
    """Reports every try; the first one fails (RQ then retries the same job)."""
    tries = connection().incr(f"async_hooks_tests:tries:{token}")
    report(token, tries=tries)
    if tries == 1:
        plain_var.set("set by the first try")
        raise RuntimeError("first try fails")


def enqueue_child(token: str) -> None:
    report(token)
    queue().enqueue(read_context, token)


def read_span(token: str) -> None:
    """The current span, and the parent of a span started here (OpenTelemetry's context)."""
    current = trace.get_current_span().get_span_context()
    with TracerProvider().get_tracer("rq").start_as_current_span("job") as span:
        parent = span.parent  # type: ignore[attr-defined]  # the SDK's Span has it
    report(
        token,
        trace_id=format(current.trace_id, "032x"),
        span_id=format(current.span_id, "016x"),
        is_remote=current.is_remote,
        parent_span_id=None if parent is None else format(parent.span_id, "016x"),
    )


RETRY_ONCE = Retry(max=1)


# -- callbacks: RQ calls them with the job, then the result or the exception ----------


def report_success(job: Job, connection: redis.Redis, result: Any) -> None:
    report(job.args[0], callback="success")
    plain_var.set("set by a callback")


def report_failure(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    report(job.args[0], callback="failure")
    plain_var.set("set by a callback")
