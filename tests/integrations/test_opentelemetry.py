"""OpenTelemetry: one trace across services, a pool, a process and a Celery task.

The end-to-end tests run the real SDK and OTLP/HTTP exporter in fresh
interpreters (OpenTelemetry picks its runtime context once, at import):
``_otel_driver.py`` starts two uvicorn services and calls the first, which
calls the second over httpx, which runs a pool job, a spawned process and a
Celery task on a real worker. Every process sends its spans to a receiver
this test runs on 127.0.0.1, which decodes them with ``opentelemetry-proto``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError
from async_hooks.integrations.opentelemetry import (
    StoreSpanAttributes,
    TraceFilter,
    opentelemetry_context,
)
from async_hooks.propagation import JSON

from ._otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from ._processes import TESTS_DIR, start_celery_worker, stop, wait_until

DRIVER_TIMEOUT = 240


def otel_env(receiver_url: str, runtime: str | None, broker_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = receiver_url
    env["ASYNC_HOOKS_TEST_BROKER"] = broker_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    if runtime is not None:
        env["OTEL_PYTHON_CONTEXT"] = runtime
    return env


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    broker_url: str, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A Celery worker whose OpenTelemetry runs on our runtime context."""
    log_path = tmp_path_factory.mktemp("otel-celery") / "worker.log"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in otel_env(receiver.url, "async_hooks", broker_url).items():
            patch.setenv(key, value)
        process = start_celery_worker("integrations._otel_app", broker_url, log_path)
    probe = subprocess.run(
        [sys.executable, "-c", PING_WORKER],
        env=otel_env(receiver.url, None, broker_url),
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert probe.returncode == 0, probe.stderr + log_path.read_text()
        yield log_path
    finally:
        stop(process)


PING_WORKER = """
import time
from integrations._otel_app import app
deadline = time.monotonic() + 45
while not app.control.ping(timeout=0.5):
    assert time.monotonic() < deadline, "celery worker not ready"
"""


def run_driver(receiver: Receiver, runtime: str | None, broker_url: str) -> dict[str, Any]:
    """Run the driver, wait for every span it causes; what it printed."""
    receiver.clear()
    result = subprocess.run(
        [sys.executable, "-m", "integrations._otel_driver"],
        env=otel_env(receiver.url, runtime, broker_url),
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    # Each span is sent as it ends, by the process that ends it, before the
    # driver's call returns: all eight are there, or arrive within moments.
    wait_until(lambda: len(receiver.spans()) >= 8, timeout=10, what="8 spans")
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def child_of(span: ReceivedSpan, parent: ReceivedSpan) -> bool:
    return span.trace_id == parent.trace_id and span.parent_span_id == parent.span_id


def test_one_trace_across_services_pool_process_and_celery(
    receiver: Receiver, broker_url: str, worker: Path
) -> None:
    seen = run_driver(receiver, "async_hooks", broker_url)
    spans = receiver.by_name()
    root = spans["client.root"]
    assert (root.trace_id, root.span_id, root.parent_span_id) == (
        seen["root"]["trace_id"],
        seen["root"]["span_id"],
        "",
    )
    # uvicorn -> httpx -> uvicorn -> Celery, and B's pool job and process.
    assert child_of(spans["a.checkout"], root)
    assert child_of(spans["b.order"], spans["a.checkout"])
    assert child_of(spans["b.pool"], spans["b.order"])
    assert child_of(spans["process.job"], spans["b.order"])
    assert child_of(spans["celery.charge"], spans["b.order"])
    assert child_of(spans["thread.installed"], root)
    # Python starts a thread in an empty context: without install() or the
    # propagation helpers, a span there starts a trace of its own.
    assert spans["thread.plain"].parent_span_id == ""
    assert (spans["process.job"].service, spans["celery.charge"].service) == ("child", "worker")
    assert seen["process_exitcode"] == 0
    assert seen["celery"]["span_id"] == spans["celery.charge"].span_id
    # The declared stores are attributes of every span started inside them,
    # in whichever process.
    # So is OpenTelemetry's baggage, which crosses with the span.
    for name in ["a.checkout", "b.order", "b.pool", "process.job", "celery.charge"]:
        attributes = spans[name].attributes
        assert (attributes["otel_tenant"], attributes["async_hooks.request_id"]) == (
            "acme",
            "req-otel-1",
        )
        assert attributes["baggage.cart"] == "42", name
    # A log line of B: the request id next to the trace and span ids.
    b = seen["b"]
    assert seen["log"] == f"req-otel-1 {b['trace_id']} {b['span_id']}"
    assert b["span_id"] == spans["b.order"].span_id


def test_opentelemetrys_own_runtime_loses_the_parent_across_processes_and_services(
    receiver: Receiver, broker_url: str, worker: Path
) -> None:
    run_driver(receiver, None, broker_url)
    spans = receiver.by_name()
    root = spans["client.root"]
    # Nothing carries OpenTelemetry's own variable out of the process: each
    # service, the process and the task start traces of their own.
    for name in ["a.checkout", "process.job", "celery.charge"]:
        assert spans[name].parent_span_id == "", name
        assert spans[name].trace_id != root.trace_id, name
    # In process, install() copies every ContextVar, its variable included.
    assert child_of(spans["b.pool"], spans["b.order"])
    assert child_of(spans["thread.installed"], root)
    assert spans["thread.plain"].parent_span_id == ""
    # The stores themselves still cross: only the trace and its baggage break.
    assert spans["celery.charge"].attributes["otel_tenant"] == "acme"
    for name in ["a.checkout", "b.order", "process.job", "celery.charge"]:
        assert "baggage.cart" not in spans[name].attributes, name


def spans_beside_opentelemetrys_instrumentation(order: str) -> dict[str, tuple[str, str]]:
    """``{span name: (kind, parent's name)}`` from ``_otel_instrumented.py`` run with ``order``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_PYTHON_CONTEXT"] = "async_hooks"
    result = subprocess.run(
        [sys.executable, "-m", "integrations._otel_instrumented", order],
        env=env,
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    spans = json.loads(result.stdout)
    names = {span["span_id"]: span["name"] for span in spans}
    return {span["name"]: (span["kind"], names.get(span["parent"], "")) for span in spans}


def test_beside_opentelemetrys_http_instrumentation_with_its_middleware_outside() -> None:
    # OpenTelemetry's client span and server span, then ours: one chain.
    spans = spans_beside_opentelemetrys_instrumentation("ours-inside")
    assert spans["client.root"] == ("INTERNAL", "")
    assert spans["GET"] == ("CLIENT", "client.root")
    assert spans["GET /order"] == ("SERVER", "GET")
    assert spans["b.handle"] == ("INTERNAL", "GET /order")


def test_beside_opentelemetrys_http_instrumentation_with_ours_outside() -> None:
    # The documented wrong order: OpenTelemetry's middleware finds a span
    # already current (ours, from the carrier) and starts an INTERNAL child
    # of it instead of a server span under the client span.
    spans = spans_beside_opentelemetrys_instrumentation("ours-outside")
    assert spans["GET"] == ("CLIENT", "client.root")
    assert spans["GET /order"] == ("INTERNAL", "client.root")
    assert spans["b.handle"] == ("INTERNAL", "GET /order")


DOC = TESTS_DIR.parent / "docs" / "opentelemetry.md"


def documented_example() -> str:
    """The Python block that follows the "tested" marker in docs/opentelemetry.md."""
    text = DOC.read_text()
    after_marker = text.split("<!-- the example: tested -->", 1)[1]
    return after_marker.split("```python\n", 1)[1].split("\n```", 1)[0]


CHECK_RUNTIME = """
import opentelemetry.context
print(type(opentelemetry.context._RUNTIME_CONTEXT).__name__)
"""


def test_the_documented_example_runs(receiver: Receiver, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    # The example must have chosen our runtime itself (its first lines).
    script.write_text(documented_example() + CHECK_RUNTIME)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = receiver.url
    receiver.clear()
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    spans = receiver.by_name()
    checkout, charge = spans["checkout"], spans["charge"]
    assert checkout.parent_span_id == ""
    assert child_of(charge, checkout)
    for span in (checkout, charge):
        assert span.attributes == {"tenant": "acme", "async_hooks.request_id": "req-1"}
    assert result.stdout == "AsyncHooksRuntimeContext\n"
    assert result.stderr == f"req-1 trace={charge.trace_id} span={charge.span_id} charging 42\n"


# -- the runtime context, the serializer, the span attributes, the log filter -----------

SELECTED = """
import opentelemetry.context as context
print(type(context._RUNTIME_CONTEXT).__name__)
"""


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [("async_hooks", "AsyncHooksRuntimeContext"), (None, "ContextVarsRuntimeContext")],
)
@pytest.mark.parametrize("first_import", ["opentelemetry", "async_hooks"])
def test_otel_python_context_selects_our_runtime(
    runtime: str | None, expected: str, first_import: str
) -> None:
    # Whichever is imported first, ours or OpenTelemetry, the entry point loads.
    program = (
        "import async_hooks.integrations.opentelemetry\n" if first_import == "async_hooks" else ""
    ) + SELECTED
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    if runtime is not None:
        env["OTEL_PYTHON_CONTEXT"] = runtime
    result = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert (result.stdout.strip(), result.stderr) == (expected, "")


def test_the_serializer_carries_the_span_and_the_baggage_only() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("s") as span:
        context = baggage.set_baggage("k", "v", trace.set_span_in_context(span, Context()))
    serializer = opentelemetry_context.serializer
    assert serializer is not None
    text = serializer.dumps(context)
    restored = serializer.loads(text)
    carried = trace.get_current_span(restored).get_span_context()
    assert (carried.trace_id, carried.span_id, carried.is_remote) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
        True,
    )
    assert baggage.get_baggage("k", restored) == "v"
    # Only a span: the traceparent value alone, compact enough for baggage.
    only_span = serializer.dumps(trace.set_span_in_context(span, Context()))
    assert len(only_span) == 55
    assert (
        only_span == f"00-{carried.trace_id:032x}-{carried.span_id:016x}-{carried.trace_flags:02x}"
    )
    assert serializer.dumps(Context()) == "{}"


@pytest.mark.parametrize("text", ['{"traceparent": 1}', '{"a": {"b": "c"}}', "{not json"])
def test_the_serializer_refuses_what_is_not_header_texts(text: str) -> None:
    serializer = opentelemetry_context.serializer
    assert serializer is not None
    with pytest.raises((TypeError, ValueError)):
        serializer.loads(text)


def test_a_carried_context_keeps_a_current_span_of_the_same_trace() -> None:
    serializer = opentelemetry_context.serializer
    assert serializer is not None
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("caller") as caller:
        text = serializer.dumps(trace.set_span_in_context(caller, Context()))
        # As under OpenTelemetry's server middleware: its span, same trace.
        with tracer.start_as_current_span("server") as server:
            assert trace.get_current_span(serializer.loads(text)) is server
    with tracer.start_as_current_span("another trace"):
        arrived = trace.get_current_span(serializer.loads(text)).get_span_context()
    assert arrived.span_id == caller.get_span_context().span_id


def test_an_invalid_traceparent_gives_no_parent() -> None:
    # As OpenTelemetry's own propagator does: ignored, not an error.
    serializer = opentelemetry_context.serializer
    assert serializer is not None
    restored = serializer.loads('["not", "a traceparent"]')
    assert not trace.get_current_span(restored).get_span_context().is_valid


def test_the_store_crosses_every_boundary() -> None:
    assert opentelemetry_context.name == "opentelemetry_context"
    assert opentelemetry_context.crosses == Crossing.ALL
    assert opentelemetry_context.get_store() == Context()


def test_store_span_attributes_copies_only_the_chosen_stores() -> None:
    plan = AsyncLocalStorage[dict[str, int]](name="otel_plan", serializer=JSON)
    note = AsyncLocalStorage[object](name="otel_note")
    ignored = AsyncLocalStorage[str](name="otel_ignored")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(StoreSpanAttributes(plan, attributes={"app.note": note}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outside"):
        pass
    with (
        plan.with_scope({"seats": 3}),
        note.with_scope(2.5),
        ignored.with_scope("no"),
        tracer.start_as_current_span("inside"),
    ):
        pass
    with note.with_scope(("a", 1)), tracer.start_as_current_span("repr"):
        pass
    attributes = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    assert attributes == {
        "outside": {},
        "inside": {"otel_plan": '{"seats":3}', "app.note": 2.5},
        "repr": {"app.note": "('a', 1)"},
    }


def test_store_span_attributes_checks_its_arguments() -> None:
    with pytest.raises(InvalidArgTypeError, match='"stores" argument must be AsyncLocalStorage'):
        StoreSpanAttributes("tenant")  # type: ignore[arg-type]  # the error under test
    with pytest.raises(InvalidArgValueError, match="needs a name of its own"):
        StoreSpanAttributes(AsyncLocalStorage[str]())
    with pytest.raises(InvalidArgTypeError, match=r"attributes\['x'\]"):
        StoreSpanAttributes(attributes={"x": 3})  # type: ignore[dict-item]  # the error under test
    with pytest.raises(InvalidArgValueError, match="non-empty str"):
        StoreSpanAttributes(attributes={"": AsyncLocalStorage[str]()})


def test_trace_filter_puts_the_ids_on_records() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "m", None, None)
    assert TraceFilter().filter(record)
    assert (record.__dict__["otelTraceID"], record.__dict__["otelSpanID"]) == ("0", "0")
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        inside = logging.LogRecord("x", logging.INFO, "", 0, "m", None, None)
        TraceFilter().filter(inside)
    context = span.get_span_context()
    assert (inside.__dict__["otelTraceID"], inside.__dict__["otelSpanID"]) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
