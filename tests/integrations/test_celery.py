"""Celery: declared stores reach a real worker, for exactly one task's run.

A real redis-server and a real ``celery worker`` (one process, one slot, so
consecutive tasks share a process and a thread) run on 127.0.0.1 for the
whole module.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, Task  # type: ignore[import-untyped]  # celery ships no types

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import StoreSerializationError
from async_hooks.integrations.celery import (
    REQUEST_ID_HEADER,
    STORES_HEADER,
    ContextTask,
    context_headers,
    parent_task_id,
    task_id,
)
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

from . import _celery_app as tasks
from ._processes import start_celery_worker, stop, wait_until

RESULT_TIMEOUT = 10

# Declared here only: the worker does not know it (it never gets a value).
strict = AsyncLocalStorage[object](name="celery_strict", crosses=Crossing.REMOTE, serializer=JSON)


@pytest.fixture(scope="module", params=["solo", "prefork"])
def worker(
    request: pytest.FixtureRequest, broker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A running worker; yields the path of its log (its stdout and stderr)."""
    tasks.configure(broker_url)
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    process = start_celery_worker(
        "integrations._celery_app", broker_url, log_path, pool=request.param
    )
    try:
        wait_until(
            lambda: _worker_answers(process), timeout=30, what=f"celery worker ({request.param})"
        )
        yield log_path
    finally:
        stop(process)
        tasks.app.close()


def _worker_answers(process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"celery worker exited with status {process.returncode}")
    return bool(tasks.app.control.ping(timeout=0.2))


def run(task: Any, *args: Any, **options: Any) -> Any:
    return task.apply_async(args, **options).get(timeout=RESULT_TIMEOUT)


def test_bare_celery_leaks_a_context_var_into_the_next_task(worker: Path) -> None:
    # The problem ContextTask solves: one task's ContextVar.set is still
    # there when the next task starts in the same worker.
    run(tasks.bare_set_plain_var, "left behind")
    assert run(tasks.bare_read_plain_var) == "left behind"
    run(tasks.bare_set_plain_var, "left behind again")
    assert run(tasks.bare_read_plain_var) == "left behind again"


def test_context_task_runs_each_task_in_a_fresh_context(worker: Path) -> None:
    run(tasks.set_plain_var, "set by the previous task")
    assert run(tasks.read_context)["plain_var"] is None


def test_declared_stores_and_request_id_cross_to_the_worker(worker: Path) -> None:
    with (
        tasks.tenant.with_scope("acme"),
        tasks.user.with_scope({"id": 7, "roles": ["admin"]}),
        tasks.local_only.with_scope("never leaves this process"),
        request_id.with_scope("req-123"),
    ):
        result = tasks.read_context.delay()
    seen = result.get(timeout=RESULT_TIMEOUT)
    assert seen["tenant"] == "acme"
    assert seen["user"] == {"id": 7, "roles": ["admin"]}
    assert seen["request_id"] == "req-123"
    assert seen["local_only"] is None
    # The task still sees Celery's own request (its id), not a stripped one.
    assert seen["task_id"] == result.id


def test_the_task_ids_are_stores_for_log_fields(worker: Path) -> None:
    result = tasks.read_context.apply_async(parent_id="parent-1")
    seen = result.get(timeout=RESULT_TIMEOUT)
    assert (seen["task_id_store"], seen["parent_task_id_store"]) == (result.id, "parent-1")
    steps = (tasks.chain_step.s() | tasks.chain_step.s()).delay().get(timeout=RESULT_TIMEOUT)
    # The second step of a chain is sent by the first: that is its parent.
    assert steps[1]["parent_task_id_store"] == steps[0]["task_id_store"]
    assert task_id.get_store() is None  # nothing of a task's run is seen here


def test_task_ids_on_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("log_fields")

    @app.task(base=ContextTask, name="log_fields.logs")  # type: ignore[untyped-decorator]  # celery ships no types
    def logs() -> None:
        logging.getLogger("log_fields").warning("inside the task")

    fields = StoreFilter({"task_id": task_id, "parent_task_id": parent_task_id})
    caplog.handler.addFilter(fields)
    try:
        with caplog.at_level(logging.WARNING, logger="log_fields"):
            logs.apply(task_id="task-1")  # sent by no task: no parent
            logging.getLogger("log_fields").warning("outside")
    finally:
        caplog.handler.removeFilter(fields)
    inside, outside = caplog.records
    assert (inside.task_id, inside.parent_task_id) == ("task-1", "-")  # type: ignore[attr-defined]
    assert (outside.task_id, outside.parent_task_id) == ("-", "-")  # type: ignore[attr-defined]


def test_stores_do_not_reach_the_next_task(worker: Path) -> None:
    with tasks.tenant.with_scope("acme"), request_id.with_scope("req-1"):
        assert run(tasks.read_context)["tenant"] == "acme"
    seen = run(tasks.read_context)
    assert seen["tenant"] is None
    assert seen["request_id"] is None


def test_a_retry_is_sent_with_the_same_context(worker: Path) -> None:
    with tasks.tenant.with_scope("acme"), request_id.with_scope("req-retry"):
        result = tasks.retry_once.delay()
    seen = result.get(timeout=RESULT_TIMEOUT)
    assert (seen["retries"], seen["tenant"], seen["request_id"]) == (1, "acme", "req-retry")


def test_the_tasks_of_a_chain_and_a_link_all_get_the_context(worker: Path) -> None:
    steps = tasks.chain_step.s() | tasks.chain_step.s() | tasks.chain_step.s()
    with tasks.tenant.with_scope("acme"), request_id.with_scope("req-chain"):
        seen = steps.delay().get(timeout=RESULT_TIMEOUT)
        linked = tasks.chain_step.apply_async(link=tasks.read_context.si())
    assert [(step["tenant"], step["request_id"]) for step in seen] == [("acme", "req-chain")] * 3
    linked.get(timeout=RESULT_TIMEOUT)
    [callback] = linked.children
    seen_by_callback = callback.get(timeout=RESULT_TIMEOUT)
    assert (seen_by_callback["tenant"], seen_by_callback["request_id"]) == ("acme", "req-chain")
    # And the next task sent by hand carries nothing.
    assert run(tasks.read_context)["tenant"] is None


def test_a_failing_task_leaks_nothing(worker: Path) -> None:
    with pytest.raises(RuntimeError, match="after entering 'poison'"):
        run(tasks.enter_and_fail, "poison")
    seen = run(tasks.read_context)
    assert (seen["tenant"], seen["request_id"], seen["plain_var"]) == (None, None, None)


def test_hostile_headers_are_skipped_with_a_warning(worker: Path) -> None:
    bad_headers = [
        {STORES_HEADER: "not a mapping"},
        {STORES_HEADER: {"no_such_store": "1", "celery_tenant": "{not json"}},
        {REQUEST_ID_HEADER: "bad id\nforged log line"},
        # A request id among the stores is checked like the header.
        {STORES_HEADER: {request_id.name: '"second\\nforgery"'}},
    ]
    for headers in bad_headers:
        seen = run(tasks.read_context, headers=headers)
        assert (seen["tenant"], seen["request_id"]) == (None, None)
    log = _read_log_when(worker, "forged log line")
    assert "is not a mapping of str to str" in log
    assert "'no_such_store'" in log
    assert "'celery_tenant' does not load" in log
    assert "the request id in the Celery headers is not valid: 'bad id" in log
    assert "not valid: 'second\\nforgery'" in log
    assert log.count("StoreSerializationWarning") >= 5


def _read_log_when(log_path: Path, text: str) -> str:
    # The worker writes its warning before running the task, but its stderr
    # may reach the file a moment after the result reaches us.
    wait_until(lambda: text in log_path.read_text(), timeout=5, what="worker log")
    return log_path.read_text()


def test_send_task_by_name_carries_context_headers(worker: Path) -> None:
    with tasks.tenant.with_scope("by name"), request_id.with_scope("req-by-name"):
        result = tasks.app.send_task("context.read_context", headers=context_headers())
    seen = result.get(timeout=RESULT_TIMEOUT)
    assert (seen["tenant"], seen["request_id"]) == ("by name", "req-by-name")


def test_a_request_id_among_the_stores_is_a_checked_fallback(worker: Path) -> None:
    seen = run(tasks.read_context, headers={STORES_HEADER: {request_id.name: '"req-in-stores"'}})
    assert seen["request_id"] == "req-in-stores"
    seen = run(
        tasks.read_context,
        headers={STORES_HEADER: {request_id.name: '"ignored"'}, REQUEST_ID_HEADER: "req-header"},
    )
    assert seen["request_id"] == "req-header"


def test_an_invalid_request_id_header_is_not_replaced_by_one_among_the_stores(
    worker: Path,
) -> None:
    # The same rule as the servers': the stores' id counts only without a header.
    headers = {STORES_HEADER: {request_id.name: '"from-stores"'}, REQUEST_ID_HEADER: "bad id"}
    assert run(tasks.read_context, headers=headers)["request_id"] is None


def test_headers_passed_by_the_caller_win(worker: Path) -> None:
    with request_id.with_scope("from-context"):
        seen = run(tasks.read_context, headers={REQUEST_ID_HEADER: "from-caller"})
    assert seen["request_id"] == "from-caller"


# -- without a worker ------------------------------------------------------------


def test_context_headers_hold_only_what_crosses_remote() -> None:
    assert context_headers() == {}
    with tasks.local_only.with_scope("private"):
        assert context_headers() == {}
    with tasks.tenant.with_scope("acme"), request_id.with_scope("req-9"):
        assert context_headers() == {
            STORES_HEADER: {"celery_tenant": '"acme"'},
            REQUEST_ID_HEADER: "req-9",
        }


def test_an_unserializable_store_fails_the_send_and_names_the_store() -> None:
    with strict.with_scope(object()), pytest.raises(StoreSerializationError, match="celery_strict"):
        tasks.read_context.delay()


def test_eager_run_sees_what_a_worker_would_see() -> None:
    # .apply() runs in this process: no store that stays in process, and
    # nothing the task sets comes back out.
    with tasks.tenant.with_scope("acme"), tasks.local_only.with_scope("private"):
        seen = tasks.read_context.apply().get()
        assert (seen["tenant"], seen["local_only"]) == ("acme", None)
        tasks.set_plain_var.apply(("inside",)).get()
        assert tasks.plain_var.get() is None


def test_a_context_task_called_as_a_function_runs_in_a_copy_of_the_callers_context() -> None:
    with tasks.tenant.with_scope("acme"), tasks.local_only.with_scope("private"):
        seen = tasks.read_context()
        tasks.set_plain_var("inside")
    assert (seen["tenant"], seen["local_only"], seen["task_id"]) == ("acme", "private", None)
    assert tasks.plain_var.get() is None


def test_context_task_is_a_celery_task() -> None:
    assert issubclass(ContextTask, Task)
    assert isinstance(tasks.read_context, ContextTask)
