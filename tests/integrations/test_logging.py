"""Store values on log records: stdlib logging (plain and python-json-logger),
structlog and loguru, each with the real library."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger
from pythonjsonlogger.json import JsonFormatter

from async_hooks import AsyncLocalStorage
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.loguru import StorePatcher
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.structlog import StoreProcessor
from tests.conftest import RunAsync

tenant: AsyncLocalStorage[dict[str, Any]] = AsyncLocalStorage(name="tenant")


def make_logger(
    formatter: logging.Formatter, log_filter: logging.Filter
) -> tuple[logging.Logger, io.StringIO]:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    handler.addFilter(log_filter)
    log = logging.Logger("test-store-filter")  # not registered: nothing leaks
    log.addHandler(handler)
    return log, output


def test_filter_feeds_a_plain_format_string() -> None:
    log, output = make_logger(logging.Formatter("%(request_id)s %(message)s"), StoreFilter())
    log.warning("outside")
    request_id.run("req-1", log.warning, "inside")
    log.warning("explicit", extra={"request_id": "given"})
    request_id.run("req-2", log.warning, "explicit wins", extra={"request_id": "given"})
    assert output.getvalue().splitlines() == [
        "- outside",
        "req-1 inside",
        "given explicit",
        "given explicit wins",
    ]


def test_filter_feeds_python_json_logger_with_structured_values() -> None:
    log, output = make_logger(
        JsonFormatter("%(message)s"),
        StoreFilter({"request_id": request_id, "tenant": tenant}, missing=None),
    )

    def handle() -> None:
        tenant.run({"id": 7, "plan": "pro"}, log.info, "handled")

    log.setLevel(logging.INFO)
    request_id.run("req-json", handle)
    log.info("idle")
    first, second = (json.loads(line) for line in output.getvalue().splitlines())
    assert first == {
        "message": "handled",
        "request_id": "req-json",
        "tenant": {"id": 7, "plan": "pro"},
    }
    assert second == {"message": "idle", "request_id": None, "tenant": None}


def test_concurrent_tasks_each_log_their_own_id(run_async: RunAsync[None]) -> None:
    log, output = make_logger(logging.Formatter("%(request_id)s %(message)s"), StoreFilter())

    async def handle(number: int) -> None:
        request_id.enter_with(f"req-{number}")
        for step in range(3):
            await asyncio.sleep(0)
            log.warning("task %d step %d", number, step)

    async def main() -> None:
        await asyncio.gather(*(handle(n) for n in range(5)))

    run_async(main)
    lines = output.getvalue().splitlines()
    assert len(lines) == 15
    for line in lines:
        logged_id, _, number, *_ = line.split()
        assert logged_id == f"req-{number}"


def test_filter_follows_a_disabled_store() -> None:
    store: AsyncLocalStorage[str] = AsyncLocalStorage()
    log, output = make_logger(logging.Formatter("%(user)s"), StoreFilter({"user": store}))
    store.enter_with("alice")
    log.warning("x")
    store.disable()
    log.warning("x")
    assert output.getvalue().splitlines() == ["alice", "-"]


def test_bad_field_choices_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidArgValueError, match="'msg' would overwrite a built-in attribute"):
        StoreFilter({"msg": request_id})
    with pytest.raises(InvalidArgValueError, match="must be identifiers"):
        StoreFilter({"request id": request_id})
    with pytest.raises(InvalidArgTypeError, match="'rid' must map to an AsyncLocalStorage"):
        StoreFilter({"rid": "request_id"})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgTypeError, match='"fields" argument must be a mapping'):
        StoreProcessor(["request_id"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgValueError, match="'event' would overwrite"):
        StoreProcessor({"event": request_id})


def test_structlog_processor_adds_values_before_rendering() -> None:
    output = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[
            StoreProcessor({"request_id": request_id, "tenant": tenant}),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
    )
    with request_id.with_scope("req-s"), tenant.with_scope({"id": 1}):
        log.info("handled", user="bob")
    log.bind(request_id="bound").info("idle")
    first, second = (json.loads(line) for line in output.getvalue().splitlines())
    assert first == {"event": "handled", "request_id": "req-s", "tenant": {"id": 1}, "user": "bob"}
    assert second == {"event": "idle", "request_id": "bound", "tenant": "-"}


@pytest.fixture
def loguru_output() -> Iterator[io.StringIO]:
    output = io.StringIO()
    handler_id = loguru_logger.add(output, format="{extra[request_id]} {message}", level="INFO")
    try:
        yield output
    finally:
        loguru_logger.remove(handler_id)


def test_loguru_patcher_fills_extra_for_formats(loguru_output: io.StringIO) -> None:
    log = loguru_logger.patch(StorePatcher())
    log.info("outside")
    request_id.run("req-l", log.info, "inside")
    log.bind(request_id="bound").info("bound")
    assert loguru_output.getvalue().splitlines() == ["- outside", "req-l inside", "bound bound"]


def test_loguru_patcher_values_reach_serialized_output() -> None:
    output = io.StringIO()
    log = loguru_logger.patch(StorePatcher({"request_id": request_id, "tenant": tenant}))
    handler_id = loguru_logger.add(output, serialize=True, level="INFO")
    try:
        with request_id.with_scope("req-j"), tenant.with_scope({"id": 3}):
            log.info("handled")
    finally:
        loguru_logger.remove(handler_id)
    record = json.loads(output.getvalue())["record"]
    assert record["extra"] == {"request_id": "req-j", "tenant": {"id": 3}}
    assert record["message"] == "handled"
