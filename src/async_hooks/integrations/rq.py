"""RQ: declared stores travel with each job and live exactly as long as its run.

An RQ ``SimpleWorker`` runs job after job in one thread, in one context, so
a ``ContextVar`` set by one job is still set when the next one starts; and
nothing of the enqueuer's context reaches any worker. ``ContextJob`` closes
both gaps:

* when a job is created (``Queue.enqueue``, ``enqueue_call``, ``enqueue_at``,
  ``enqueue_in``, ``enqueue_many``, dependents), the stores whose policy
  includes ``Crossing.REMOTE`` are serialized into ``job.meta``, with the
  current request id and the id of the job running here, if any, beside
  them;
* in the worker, each run of the job happens in a fresh copy of the worker's
  context with those stores entered: whatever the job sets is gone when it
  returns or raises. Its callbacks (``on_success``, ``on_failure``) run in
  fresh copies of the context the job started in.

Use it as the job class on both sides, RQ's own extension point::

    queue = Queue(connection=redis, job_class=ContextJob)
    # rq worker --job-class async_hooks.integrations.rq.ContextJob

For log lines, ``job_id`` and ``parent_job_id`` are stores that hold, during
a run, the job's id and the id of the job that enqueued it::

    StoreFilter({"request_id": request_id, "job_id": job_id, "parent_job_id": parent_job_id})

``job.meta`` comes from Redis, so it is untrusted: a carrier of the wrong
shape, an unknown store name, a value that does not load or an invalid id
each give a ``StoreSerializationWarning`` and are skipped; the job runs
regardless.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import Context, copy_context
from typing import Any

from .._extras import missing_extra

try:
    import rq.job
except ImportError as error:
    raise missing_extra(__name__, "rq", extra="rq") from error

from .._storage import AsyncLocalStorage
from ._carrier import outgoing_carrier
from ._worker_carrier import REQUEST_ID_KEY, STORES_KEY, accept_carried_id, enter_worker_carrier

__all__ = [
    "PARENT_JOB_ID_META_KEY",
    "REQUEST_ID_META_KEY",
    "STORES_META_KEY",
    "ContextJob",
    "context_meta",
    "job_id",
    "parent_job_id",
]

# The keys of job.meta that carry the context: the names of Celery's headers.
STORES_META_KEY = STORES_KEY
REQUEST_ID_META_KEY = REQUEST_ID_KEY
PARENT_JOB_ID_META_KEY = "async_hooks_parent_job_id"

# In-process stores (a job's id is the worker's own knowledge; the parent's
# travels as a meta key of its own), named under our namespace.
job_id: AsyncLocalStorage[str] = AsyncLocalStorage(name="async_hooks.rq.job_id")
parent_job_id: AsyncLocalStorage[str] = AsyncLocalStorage(name="async_hooks.rq.parent_job_id")

_PLACE = "RQ job meta"


def context_meta() -> dict[str, Any]:
    """The ``job.meta`` entries that carry the current context to a worker.

    ``{STORES_META_KEY: {store name: serialized value}}`` for the stores
    that cross ``Crossing.REMOTE`` and have a value here,
    ``{REQUEST_ID_META_KEY: id}`` when a request id is current, and
    ``{PARENT_JOB_ID_META_KEY: id}`` inside a ``ContextJob``'s run; empty
    when there is nothing to carry. A store whose serializer fails raises
    ``StoreSerializationError`` (or warns, per its ``on_serialize_error``).
    """
    # RQ serializes meta as a whole (pickle or JSON): the stores go as a dict.
    meta: dict[str, Any] = outgoing_carrier(STORES_META_KEY, REQUEST_ID_META_KEY, dict)
    running = job_id.get_store()
    if running is not None:
        meta[PARENT_JOB_ID_META_KEY] = running
    return meta


class ContextJob(rq.job.Job):
    """An RQ job that carries declared stores to the worker and isolates each run."""

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> ContextJob:
        # Every way of enqueueing goes through create(), in the caller's
        # thread and context: the one place that sees what to carry.
        carried = context_meta()
        job = super().create(*args, **kwargs)
        assert isinstance(job, ContextJob)  # create() makes an instance of cls
        if carried:
            # Meta the caller passed wins over ours; a new dict, since the
            # caller's own is not ours to change.
            job.meta = {**carried, **job.meta}
        return job

    # The context in which this run's callbacks (on_success, on_failure,
    # on_stopped) run, a fresh copy each: the worker's, with the carrier
    # entered, as the body found it. Set when the body starts; None before.
    _callback_context: Context | None = None

    @property
    def success_callback(self) -> Any:
        return self._in_run_context(super().success_callback)

    @property
    def failure_callback(self) -> Any:
        return self._in_run_context(super().failure_callback)

    @property
    def stopped_callback(self) -> Any:
        # Runs in the main worker process after its work horse was killed,
        # where this job never ran: there it gets the worker's context.
        return self._in_run_context(super().stopped_callback)

    def _in_run_context(self, callback: Callable[..., Any] | None) -> Any:
        context = self._callback_context
        # RQ refuses coroutine callbacks by inspecting them: left as they are.
        if callback is None or context is None or inspect.iscoroutinefunction(callback):
            return callback

        @functools.wraps(callback)
        def in_run_context(*args: Any, **kwargs: Any) -> Any:
            return context.copy().run(callback, *args, **kwargs)

        return in_run_context

    def perform(self) -> Any:
        # A fresh copy per run, also for a retry of this same job in this
        # same worker: nothing one run sets reaches the next.
        return copy_context().run(self._perform_with_stores)

    def _perform_with_stores(self) -> Any:
        # RQ imports the job's function on first use. Done before the
        # carrier is entered, so that the stores its module declares are
        # live in a worker that had never imported it, and so are entered.
        self.func  # noqa: B018  # the import is the point
        run = f"job {self.func_name}[{self.id}]"
        meta: Mapping[str, Any] = self.meta if isinstance(self.meta, Mapping) else {}
        # Plain sets, not scopes: this whole context is the run's own copy.
        job_id.enter_with(self.id)
        parent = accept_carried_id(
            meta.get(PARENT_JOB_ID_META_KEY), run=run, place=_PLACE, what="parent job id"
        )
        parent_job_id.enter_with(parent)
        with enter_worker_carrier(
            meta.get(STORES_META_KEY), meta.get(REQUEST_ID_META_KEY), run=run, place=_PLACE
        ):
            # A snapshot (contexts are immutable mappings): what the body
            # sets later is not in it.
            self._callback_context = copy_context()
            return super().perform()
