"""RQ: declared stores reach a real worker, for exactly one run of one job.

A real redis-server and a real ``rq worker`` (``SimpleWorker``: one process,
one thread, so consecutive jobs share both) run on 127.0.0.1 for the whole
module, with ``--job-class async_hooks.integrations.rq.ContextJob``. Jobs
report what they see onto Redis lists (``_rq_app.report``).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry import trace
from opentelemetry.context import Context
from rq import Callback, Queue
from rq.job import Job

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import StoreSerializationError
from async_hooks.integrations.opentelemetry import opentelemetry_context
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.rq import (
    PARENT_JOB_ID_META_KEY,
    REQUEST_ID_META_KEY,
    STORES_META_KEY,
    ContextJob,
    context_meta,
    job_id,
)
from async_hooks.propagation import JSON

from . import _rq_app as jobs
from ._processes import TESTS_DIR, start_worker, stop, wait_until, worker_env

REPORT_TIMEOUT = 10
SUCCESS = Callback(jobs.report_success)
FAILURE = Callback(jobs.report_failure)
_tokens = itertools.count()

# Declared here only: the worker does not know it (it never gets a value).
strict = AsyncLocalStorage[object](name="rq_strict", crosses=Crossing.REMOTE, serializer=JSON)


@pytest.fixture(scope="module")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running ``rq worker``; yields the path of its log (its stdout and stderr)."""
    log_path = tmp_path_factory.mktemp("rq") / "worker.log"
    command = [sys.executable, "-m", "rq.cli", "worker", "--url", broker_url]
    command += ["--worker-class", "rq.worker.SimpleWorker"]
    command += ["--job-class", "async_hooks.integrations.rq.ContextJob"]
    # Jobs are enqueued by their import path here, tests.integrations._rq_app.
    command += ["--path", str(TESTS_DIR.parent), "--logging_level", "WARNING", "async_hooks_tests"]
    # The worker's OpenTelemetry keeps its context in our store.
    env = worker_env(broker_url, OTEL_PYTHON_CONTEXT="async_hooks")
    process = start_worker(command, env, log_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASYNC_HOOKS_TEST_BROKER", broker_url)  # for jobs.queue() here
        try:
            token = enqueue(jobs.read_context)
            wait_until(lambda: _reported(process, token), timeout=30, what="rq worker")
            yield log_path
        finally:
            stop(process)


def _reported(process: subprocess.Popen[bytes], token: str) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"rq worker exited with status {process.returncode}")
    return bool(jobs.connection().llen(jobs.reports_key(token)))


def enqueue(function: Any, *args: Any, **options: Any) -> str:
    """Enqueue ``function(token, *args)``; the token under which its runs report."""
    token = str(next(_tokens))
    jobs.queue().enqueue(function, token, *args, **options)
    return token


def reports(token: str, count: int = 1) -> list[dict[str, Any]]:
    """The next ``count`` reports of the runs of ``token``."""
    client = jobs.connection()
    seen = []
    for _ in range(count):
        item = client.blpop([jobs.reports_key(token)], timeout=REPORT_TIMEOUT)
        assert item is not None, f"no report for {token} after {REPORT_TIMEOUT} s"
        seen.append(json.loads(item[1]))
    return seen


def run(function: Any, *args: Any, **options: Any) -> dict[str, Any]:
    [seen] = reports(enqueue(function, *args, **options))
    return seen


def test_declared_stores_and_request_id_cross_to_the_worker(worker: Path) -> None:
    with (
        jobs.tenant.with_scope("acme"),
        jobs.user.with_scope({"id": 7, "roles": ["admin"]}),
        jobs.local_only.with_scope("never leaves this process"),
        request_id.with_scope("req-123"),
    ):
        seen = run(jobs.read_context)
    assert (seen["tenant"], seen["user"], seen["request_id"]) == (
        "acme",
        {"id": 7, "roles": ["admin"]},
        "req-123",
    )
    assert seen["local_only"] is None
    assert seen["job_id"] is not None
    assert seen["parent_job_id"] is None  # enqueued by no job


def test_nothing_reaches_the_next_job_on_the_same_worker(worker: Path) -> None:
    with jobs.tenant.with_scope("acme"), request_id.with_scope("req-1"):
        assert run(jobs.set_everything, "set by the job")["tenant"] == "set by the job"
    seen = run(jobs.read_context)
    assert (seen["tenant"], seen["request_id"], seen["plain_var"]) == (None, None, None)


def test_a_failing_job_leaks_nothing(worker: Path) -> None:
    assert run(jobs.set_everything_and_fail, "poison")["plain_var"] == "poison"
    seen = run(jobs.read_context)
    assert (seen["tenant"], seen["request_id"], seen["plain_var"]) == (None, None, None)


def test_each_try_of_a_retried_job_gets_the_context(worker: Path) -> None:
    with jobs.tenant.with_scope("acme"), request_id.with_scope("req-retry"):
        token = enqueue(jobs.fail_first_try, retry=jobs.RETRY_ONCE)
    tries = reports(token, count=2)
    assert [(t["tries"], t["tenant"], t["request_id"]) for t in tries] == [
        (1, "acme", "req-retry"),
        (2, "acme", "req-retry"),
    ]
    # Each try is a run of its own: the second does not see the first's sets.
    assert tries[1]["plain_var"] is None
    assert tries[0]["job_id"] == tries[1]["job_id"]


def test_a_job_enqueued_by_a_job_carries_the_context_and_its_parent(worker: Path) -> None:
    with jobs.tenant.with_scope("acme"), request_id.with_scope("req-child"):
        token = enqueue(jobs.enqueue_child)
    parent, child = reports(token, count=2)
    assert (child["tenant"], child["request_id"]) == ("acme", "req-child")
    assert child["parent_job_id"] == parent["job_id"]
    assert child["job_id"] != parent["job_id"]


def test_the_callbacks_run_in_the_context_the_job_started_in(worker: Path) -> None:
    with jobs.tenant.with_scope("acme"), request_id.with_scope("req-callback"):
        succeeded = enqueue(jobs.set_everything, "set by the job", on_success=SUCCESS)
        failed = enqueue(jobs.set_everything_and_fail, "set by the job", on_failure=FAILURE)
    for token, callback in [(succeeded, "success"), (failed, "failure")]:
        body, seen = reports(token, count=2)
        assert body["plain_var"] == "set by the job"
        # Not what the body set: the stores as the job arrived, and the run's ids.
        assert (seen["callback"], seen["tenant"], seen["request_id"], seen["plain_var"]) == (
            callback,
            "acme",
            "req-callback",
            None,
        )
        assert seen["job_id"] == body["job_id"]
    # And what a callback sets stays in it.
    assert run(jobs.read_context)["plain_var"] is None


@pytest.mark.parametrize(
    ("meta", "warning"),
    [
        ({STORES_META_KEY: "not a mapping"}, "in the RQ job meta is not a mapping of str to str"),
        ({STORES_META_KEY: {"no_such_store": "1"}}, "'no_such_store'"),
        ({STORES_META_KEY: {"rq_tenant": "{not json"}}, "'rq_tenant' does not load"),
        ({REQUEST_ID_META_KEY: "bad id\nforged"}, "the request id in the RQ job meta is not valid"),
        ({PARENT_JOB_ID_META_KEY: ["x"]}, "the parent job id in the RQ job meta is not valid"),
    ],
)
def test_a_malformed_carrier_is_skipped_with_a_warning_and_the_job_runs(
    worker: Path, meta: dict[str, Any], warning: str
) -> None:
    seen = run(jobs.read_context, meta=meta)
    assert (seen["tenant"], seen["request_id"], seen["parent_job_id"]) == (None, None, None)
    wait_until(lambda: warning in worker.read_text(), timeout=5, what="the warning")
    assert "StoreSerializationWarning" in worker.read_text()


def test_opentelemetrys_context_crosses_into_the_job(worker: Path) -> None:
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
        seen = run(jobs.read_span)
    assert (seen["trace_id"], seen["span_id"], seen["is_remote"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        True,
    )
    assert seen["parent_span_id"] == "b7ad6b7169203331"  # a span there is a child


# -- without a worker ------------------------------------------------------------


def test_the_job_meta_holds_only_what_crosses_remote(broker_url: str) -> None:
    assert context_meta() == {}
    with jobs.local_only.with_scope("private"):
        assert context_meta() == {}
    queue = Queue("unused", connection=redis.Redis.from_url(broker_url), job_class=ContextJob)
    with jobs.tenant.with_scope("acme"), request_id.with_scope("req-9"):
        job = queue.enqueue(
            jobs.read_context, "-", meta={"mine": 1, REQUEST_ID_META_KEY: "req-mine"}
        )
    # What the caller put in meta wins; the rest is ours.
    assert job.meta == {
        STORES_META_KEY: {"rq_tenant": '"acme"'},
        REQUEST_ID_META_KEY: "req-mine",
        "mine": 1,
    }
    assert Job.fetch(job.id, connection=queue.connection).meta == job.meta
    with job_id.with_scope("running-job"):
        assert context_meta() == {PARENT_JOB_ID_META_KEY: "running-job"}


def test_an_unserializable_store_fails_the_enqueue_and_names_the_store(broker_url: str) -> None:
    queue = Queue("unused", connection=redis.Redis.from_url(broker_url), job_class=ContextJob)
    with strict.with_scope(object()), pytest.raises(StoreSerializationError, match="rq_strict"):
        queue.enqueue(jobs.read_context, "-")


def test_context_job_is_an_rq_job() -> None:
    assert issubclass(ContextJob, Job)
