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

For log lines, ``task_id`` and ``parent_task_id`` are stores that hold, for
a ``ContextTask``'s run, its own id and the id of the task that sent it::

    StoreFilter({"request_id": request_id, "task_id": task_id, "parent_task_id": parent_task_id})

Headers come from the broker, so they are untrusted: a header of the wrong
shape, an unknown store name, a value that does not load or an invalid
request id each give a ``StoreSerializationWarning`` and are skipped; the
task runs regardless.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar, copy_context
from typing import Any

from .._extras import missing_extra

try:
    import celery  # type: ignore[import-untyped]  # celery ships no types
    from celery import Task
except ImportError as error:
    raise missing_extra(__name__, "celery", extra="celery") from error

from .._policy import Crossing, capture_context
from .._storage import AsyncLocalStorage
from ._carrier import outgoing_carrier
from ._worker_carrier import REQUEST_ID_KEY, STORES_KEY, enter_worker_carrier

__all__ = [
    "REQUEST_ID_HEADER",
    "STORES_HEADER",
    "ContextTask",
    "context_headers",
    "parent_task_id",
    "task_id",
]

# Celery copies custom message headers into ``task.request``, so these names
# must be valid attribute names and must not clash with Celery's own.
STORES_HEADER = STORES_KEY
REQUEST_ID_HEADER = REQUEST_ID_KEY

# In-process stores (they never travel: a task's id is the worker's own
# knowledge), named under our namespace so that users' names stay free.
task_id: AsyncLocalStorage[str] = AsyncLocalStorage(name="async_hooks.celery.task_id")
parent_task_id: AsyncLocalStorage[str] = AsyncLocalStorage(name="async_hooks.celery.parent_task_id")

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
        # Plain sets, not scopes: this whole context is the run's own copy.
        task_id.enter_with(request.id)
        parent_task_id.enter_with(request.get("parent_id"))
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
    return enter_worker_carrier(
        request.get(STORES_HEADER), request.get(REQUEST_ID_HEADER), run=task, place="Celery headers"
    )
