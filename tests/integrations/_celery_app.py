"""The Celery app of the tests: imported by the test process (to send) and the worker (to run).

The broker is a Redis started by the tests; the worker gets its URL from
``ASYNC_HOOKS_TEST_BROKER`` and the test process sets it with ``configure``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from celery import Celery, Task  # type: ignore[import-untyped]  # celery ships no types

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.celery import ContextTask, parent_task_id, task_id
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

app = Celery("async_hooks_celery_tests")


def configure(broker_url: str) -> None:
    app.conf.update(
        broker_url=broker_url,
        result_backend=broker_url,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )


def celery_task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``app.task``, typed: celery has no type information, so tasks are Any."""
    decorator: Callable[[Callable[..., Any]], Any] = app.task(**options)
    return decorator


configure(os.environ.get("ASYNC_HOOKS_TEST_BROKER", "redis://127.0.0.1:1/0"))

# Declared stores: they cross to the worker by name.
tenant = AsyncLocalStorage[str](name="celery_tenant", crosses=Crossing.ALL, serializer=JSON)
user = AsyncLocalStorage[dict[str, Any]](
    name="celery_user", crosses=Crossing.REMOTE, serializer=JSON
)
# The default policy (in process only): never leaves this process.
local_only = AsyncLocalStorage[str](name="celery_local_only")

# What any library might keep in a bare ContextVar: one for bare tasks, one
# for ContextTasks, so that a leak shown by the first cannot blur the second.
bare_var: ContextVar[str | None] = ContextVar("bare_var", default=None)
plain_var: ContextVar[str | None] = ContextVar("plain_var", default=None)


def current_context() -> dict[str, Any]:
    return {
        "tenant": tenant.get_store(),
        "user": user.get_store(),
        "local_only": local_only.get_store(),
        "request_id": request_id.get_store(),
        "plain_var": plain_var.get(),
        "task_id_store": task_id.get_store(),
        "parent_task_id_store": parent_task_id.get_store(),
    }


# -- bare Celery: shows the leak ----------------------------------------------


@celery_task(base=Task, name="bare.set_plain_var")
def bare_set_plain_var(value: str) -> None:
    bare_var.set(value)


@celery_task(base=Task, name="bare.read_plain_var")
def bare_read_plain_var() -> str | None:
    return bare_var.get()


# -- ContextTask: stores carried, each run isolated ------------------------------


@celery_task(base=ContextTask, name="context.set_plain_var")
def set_plain_var(value: str) -> None:
    plain_var.set(value)


@celery_task(base=ContextTask, name="context.read_context", bind=True)
def read_context(self: Task) -> dict[str, Any]:
    # self.request must still be Celery's own request: ContextTask wraps it.
    return {**current_context(), "task_id": self.request.id}


@celery_task(base=ContextTask, name="context.enter_and_fail")
def enter_and_fail(value: str) -> None:
    tenant.enter_with(value)
    request_id.enter_with(value)
    plain_var.set(value)
    raise RuntimeError(f"task failed after entering {value!r}")


@celery_task(base=ContextTask, name="context.retry_once", bind=True)
def retry_once(self: Task) -> dict[str, Any]:
    if self.request.retries == 0:
        raise self.retry(countdown=0, max_retries=1)
    return {**current_context(), "retries": self.request.retries}


@celery_task(base=ContextTask, name="context.chain_step")
def chain_step(seen_before: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [*(seen_before or []), current_context()]
