"""Ours beside OpenTelemetry's HTTP instrumentation: ``-m integrations._otel_instrumented ORDER``.

Run from tests/. One uvicorn service behind both server middlewares, ours and
OpenTelemetry's ASGI one, in the ``ORDER`` given (``ours-outside`` or
``ours-inside``), called by an httpx client instrumented by both. Prints
every span as JSON: name, span id, parent span id.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.httpx import instrument_httpx

from .servers import uvicorn_server

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("async_hooks.tests")


async def order(request: Request) -> PlainTextResponse:
    with tracer.start_as_current_span("b.handle"):
        return PlainTextResponse("ok")


def service(order_of_middlewares: str) -> Any:
    app: Any = Starlette(routes=[Route("/order", order)])
    if order_of_middlewares == "ours-outside":
        return RequestContextMiddleware(OpenTelemetryMiddleware(app))
    return OpenTelemetryMiddleware(RequestContextMiddleware(app))


def main() -> None:
    with uvicorn_server(service(sys.argv[1]), loop="asyncio") as url:
        client = instrument_httpx(httpx.Client(timeout=60))
        HTTPXClientInstrumentor().instrument_client(client)
        with client, tracer.start_as_current_span("client.root"):
            client.get(f"{url}/order").raise_for_status()
    spans = [
        {
            "name": span.name,
            "kind": span.kind.name,
            "span_id": format(span.context.span_id, "016x"),
            "parent": format(span.parent.span_id, "016x") if span.parent else "",
        }
        for span in exporter.get_finished_spans()
    ]
    print(json.dumps(spans))


if __name__ == "__main__":
    main()
