"""The OpenTelemetry trace test's client: ``python -m integrations._otel_driver`` (from tests/).

Starts services A and B (uvicorn, each on a thread of its own, linked only
by HTTP), then, inside a root span, calls A, which calls B, which runs a
pool job, a spawned process and a Celery task. Prints the ids each part saw
as JSON; the spans themselves go to the receiver named by
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``.
"""

from __future__ import annotations

import json
import threading

import httpx
from opentelemetry import baggage
from opentelemetry import context as otel_context

from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import install

from ._otel_app import service_a, service_b, tenant, tracer
from .servers import uvicorn_server


def thread_span(name: str) -> None:
    """A span started in a plain ``threading.Thread``."""

    def start() -> None:
        with tracer("driver").start_as_current_span(name):
            pass

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()


def main() -> None:
    root_tracer = tracer("driver")
    with (
        uvicorn_server(service_b(), loop="asyncio") as b_url,
        uvicorn_server(service_a(), loop="asyncio") as a_url,
        tenant.with_scope("acme"),
        request_id.with_scope("req-otel-1"),
        root_tracer.start_as_current_span("client.root") as root,
    ):
        thread_span("thread.plain")
        install()  # from here on threads and pools carry the context
        thread_span("thread.installed")
        # OpenTelemetry's baggage, beside the span: it must reach every span below.
        token = otel_context.attach(baggage.set_baggage("cart", "42"))
        try:
            with instrument_httpx(httpx.Client(timeout=180)) as client:
                response = client.get(f"{a_url}/checkout", params={"b_url": b_url})
        finally:
            otel_context.detach(token)
        response.raise_for_status()
        context = root.get_span_context()
        ids = {"trace_id": format(context.trace_id, "032x")}
        ids["span_id"] = format(context.span_id, "016x")
    print(json.dumps({"root": ids, **response.json()}))


if __name__ == "__main__":
    main()
