"""Celery: declared stores travel with each task and live exactly as long as it.

A Celery worker runs task after task in one thread, in one context, so a
``ContextVar`` set by one task is still set when the next task starts (bare
Celery leaks). ``ContextTask`` closes both gaps:

* when a task is sent (``delay``, ``apply_async``, and through them canvas
  primitives), the stores whose policy includes ``Crossing.REMOTE`` are
  serialized into a message header, with the current request id beside them;
* in the worker, each run of the task happens in a fresh copy of the
  worker's context, with those stores entered: whatever the task sets, our
  stores or anyone's ``ContextVar``, is gone when it returns or raises.

Use it as the base of your tasks, on both sides (the usual Celery setup
imports one tasks module in the client and the worker)::

    app = Celery("shop", broker=..., task_cls=ContextTask)

or ``@app.task(base=ContextTask)`` for some tasks only. Code that sends by
name with ``app.send_task`` passes ``headers=context_headers()`` itself.

Headers come from the broker, so they are untrusted: a header of the wrong
shape, an unknown store name, a value that does not load or an invalid
request id each give a ``StoreSerializationWarning`` and are skipped; the
task runs regardless.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar, copy_context
from typing import Any

from .._extras import missing_extra

try:
    import celery  # type: ignore[import-untyped]  # celery ships no types
    from celery import Task
except ImportError as error:
    raise missing_extra(__name__, "celery", extra="celery") from error

from .._policy import Crossing, capture_context, warn_skipped
from ..errors import StoreSerializationWarning
from ._carrier import enter_carrier, outgoing_carrier

__all__ = ["REQUEST_ID_HEADER", "STORES_HEADER", "ContextTask", "context_headers"]

# Celery copies custom message headers into ``task.request``, so these names
# must be valid attribute names and must not clash with Celery's own.
STORES_HEADER = "async_hooks_stores"
REQUEST_ID_HEADER = "async_hooks_request_id"

# True inside a ContextTask's body (its own context), False elsewhere.
_in_task_body: ContextVar[bool] = ContextVar("async_hooks_celery_in_task_body", default=False)


def context_headers() -> dict[str, Any]:
    """The message headers that carry the current context to a worker.

    ``{STORES_HEADER: {store name: serialized value}}`` for the stores that
    cross ``Crossing.REMOTE`` and have a value here, and
    ``{REQUEST_ID_HEADER: id}`` when a request id is current; empty when
    there is nothing to carry. A store whose serializer fails raises
    ``StoreSerializationError`` (or warns, per its ``on_serialize_error``).
    """
    # Celery headers are structured: the stores go as a dict, not encoded.
    return outgoing_carrier(STORES_HEADER, REQUEST_ID_HEADER, dict)


class ContextTask(Task):  # type: ignore[misc]  # Task is untyped (Any)
    """A Celery task that carries declared stores to the worker and isolates each run."""

    abstract = True

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Any:
        carried = context_headers()
        if not _in_task_body.get():
            # Celery sends the next task of a chain and link callbacks itself,
            # after the task returned, outside its context: those inherit the
            # context the finishing task arrived with.
            carried = {**_headers_of_running_task(), **carried}
        if carried:
            # Headers the caller passed explicitly win over ours.
            options["headers"] = {**carried, **(options.get("headers") or {})}
        return super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, **options
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        # Run in place (task_always_eager, .apply()), the task sees what a
        # worker would see: no store that stays in process.
        context = capture_context(Crossing.REMOTE) if request.is_eager else copy_context()
        return context.run(self._run_with_stores, request, args, kwargs)

    def _run_with_stores(self, request: Any, args: Any, kwargs: Any) -> Any:
        _in_task_body.set(True)  # in the run's own context copy: gone after it
        with _entered(request, f"task {self.name}[{request.id}]"):
            return super().__call__(*args, **kwargs)


def _headers_of_running_task() -> dict[str, Any]:
    """Our headers of the task this worker thread is running, if it has any."""
    running = celery.current_task
    if not running:  # a proxy: false when no task is running
        return {}
    request = running.request
    return {
        key: value
        for key in (STORES_HEADER, REQUEST_ID_HEADER)
        if (value := request.get(key)) is not None
    }


def _entered(request: Any, task: str) -> AbstractContextManager[str | None]:
    """Enter the stores and request id carried by ``request``'s headers.

    ``request`` is Celery's request of this run (an empty one when the task
    is called as a plain function); ``task`` names the run in warnings.
    """
    members = _read_stores_header(request.get(STORES_HEADER), task)
    return enter_carrier(members, request.get(REQUEST_ID_HEADER), _TaskRun(task))


class _TaskRun:
    """How a task's run takes its carrier: every refusal is a warning naming the run."""

    __slots__ = ("_task",)

    # A worker has no option to distrust ids, as servers have: an id that
    # arrives is used when it is valid.
    trust_incoming = True

    def __init__(self, task: str) -> None:
        self._task = task

    def fresh_id(self) -> None:
        # No id is made up in the worker: log lines then show no id that no
        # request ever had.
        return None

    def skipped(self, name: str, crossing: Crossing, error: Exception | None) -> None:
        warn_skipped(name, crossing, error)

    def rejected_id(self, value: object, from_header: bool) -> None:
        warnings.warn(
            f"{self._task}: the request id in the Celery headers is not valid: "
            f"{repr(value)[:60]}; ignored",
            StoreSerializationWarning,
            stacklevel=2,
        )


def _read_stores_header(value: object, task: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(
        isinstance(name, str) and isinstance(text, str) for name, text in value.items()
    ):
        return value
    warnings.warn(
        f"{task}: Celery header {STORES_HEADER!r} is not a mapping of str to str; "
        f"no store was entered (got {type(value).__name__})",
        StoreSerializationWarning,
        stacklevel=2,
    )
    return {}
