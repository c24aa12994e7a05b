"""The services, Celery task and process job of the OpenTelemetry trace test.

Imported by the driver (``_otel_driver.py``), by the Celery worker
(``celery -A integrations._otel_app worker``) and by the spawned process,
each with ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` naming the test's receiver
and, for our runtime, ``OTEL_PYTHON_CONTEXT=async_hooks``. Every process sends
its spans itself, each as it ends (``SimpleSpanProcessor``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import logging
import multiprocessing
import os
from typing import Any

import httpx
from celery import Celery  # type: ignore[import-untyped]  # celery ships no types
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.celery import ContextTask
from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.opentelemetry import StoreSpanAttributes, TraceFilter
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON, start_process

# Declared: becomes a span attribute everywhere the spans are started.
tenant = AsyncLocalStorage[str](name="otel_tenant", crosses=Crossing.ALL, serializer=JSON)

app = Celery("async_hooks_otel_tests")
_broker = os.environ.get("ASYNC_HOOKS_TEST_BROKER", "redis://127.0.0.1:1/0")
app.conf.update(
    broker_url=_broker,
    result_backend=_broker,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


class BaggageAttributes(SpanProcessor):
    """Shows where OpenTelemetry's baggage arrived: each entry as a ``baggage.<key>`` attribute."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for key, value in baggage.get_all(parent_context).items():
            span.set_attribute(f"baggage.{key}", str(value))


@functools.cache
def tracer(service: str) -> trace.Tracer:
    """This process's tracer; the first call sets the process's provider up."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(StoreSpanAttributes(tenant, request_id))
    provider.add_span_processor(BaggageAttributes())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return trace.get_tracer("async_hooks.tests")


def span_ids() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


# -- the Celery task and the process job ----------------------------------------------


@app.task(base=ContextTask, name="otel.charge")  # type: ignore[untyped-decorator]  # celery is untyped
def charge() -> dict[str, str]:
    with tracer("worker").start_as_current_span("celery.charge"):
        return span_ids()


def process_job() -> None:
    """Runs in a spawned process, inside the stores its starter carried."""
    with tracer("child").start_as_current_span("process.job"):
        pass
    # The process ends now: nothing may stay unsent (SimpleSpanProcessor
    # sent it already; shutting down says so).
    provider: Any = trace.get_tracer_provider()
    provider.shutdown()


# -- the two services ---------------------------------------------------------------

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)


def pool_job() -> dict[str, str]:
    with tracer("driver").start_as_current_span("b.pool"):
        return span_ids()


def run_process() -> int | None:
    process = start_process(process_job, mp_context=multiprocessing.get_context("spawn"))
    process.join(120)
    return process.exitcode


def log_line() -> str:
    """One record through StoreFilter and TraceFilter, formatted: what a log shows."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(StoreFilter())
    handler.addFilter(TraceFilter())
    handler.setFormatter(logging.Formatter("%(request_id)s %(otelTraceID)s %(otelSpanID)s"))
    logger = logging.Logger("otel_test")
    logger.addHandler(handler)
    logger.warning("charged")
    return stream.getvalue().strip()


async def b_order(request: Request) -> JSONResponse:
    with tracer("driver").start_as_current_span("b.order"):
        loop = asyncio.get_running_loop()
        pooled = await loop.run_in_executor(_pool, pool_job)
        exitcode = await asyncio.to_thread(run_process)
        result = charge.delay()
        charged = await asyncio.to_thread(result.get, timeout=60)
        return JSONResponse(
            {
                "b": span_ids(),
                "pool": pooled,
                "process_exitcode": exitcode,
                "celery": charged,
                "log": log_line(),
            }
        )


async def a_checkout(request: Request) -> JSONResponse:
    with tracer("driver").start_as_current_span("a.checkout"):
        async with instrument_httpx(httpx.AsyncClient(timeout=120)) as client:
            response = await client.get(f"{request.query_params['b_url']}/order")
        return JSONResponse({"a": span_ids(), **response.json()})


def service_a() -> Any:
    return RequestContextMiddleware(Starlette(routes=[Route("/checkout", a_checkout)]))


def service_b() -> Any:
    return RequestContextMiddleware(Starlette(routes=[Route("/order", b_order)]))
