"""OpenTelemetry's runtime context, kept in a store: the target of our entry point.

OpenTelemetry loads this module itself, while ``opentelemetry.context`` is
still being imported (``OTEL_PYTHON_CONTEXT=async_hooks`` names our entry
point in the ``opentelemetry_context`` group). So it imports nothing of
OpenTelemetry but ``opentelemetry.context.context``, which is complete by
then; the propagators are imported on first use. ``opentelemetry.py`` is the
face users import.
"""

from __future__ import annotations

import json
from contextvars import Token
from typing import Any

from opentelemetry.context.context import Context, _RuntimeContext

from .._policy import Crossing
from .._storage import AsyncLocalStorage, _bound_var_methods, _reset, _set
from .._validation import describe


class TraceContextSerializer:
    """An OpenTelemetry ``Context`` as the text of its propagation headers, and back.

    Uses the globally configured propagator (``OTEL_PROPAGATORS``; W3C
    ``traceparent`` and ``baggage`` by default), so the active span's context
    and the baggage cross, and nothing else of the context: a span object
    cannot leave its process. When ``traceparent`` is all there is, the text
    is that header's value alone (55 characters); otherwise it is a compact
    JSON object of the headers. What arrives is extracted into a new, empty
    context: the parent is the remote span. One exception: where the current
    context already has a span of the same trace, it is kept, since it is
    the more recent one (OpenTelemetry's own server instrumentation read
    ``traceparent`` and started its server span before our carrier was
    entered).
    """

    _encode = json.JSONEncoder(separators=(",", ":")).encode

    def dumps(self, value: Any, /) -> str:
        if not isinstance(value, Context):
            raise TypeError(f"expected an opentelemetry Context, got {describe(value)}")
        from opentelemetry import propagate  # imported late: see the module docstring

        headers: dict[str, str] = {}
        propagate.inject(headers, context=value)
        if len(headers) == 1 and "traceparent" in headers:
            return headers["traceparent"]
        return self._encode(headers)

    def loads(self, text: str, /) -> Context:
        from opentelemetry import (
            context,
            propagate,
            trace,
        )  # imported late: see the module docstring

        # The text comes from another process or machine: anything that is
        # not a flat object of strings raises, and the receiver skips it.
        headers = json.loads(text) if text.startswith("{") else {"traceparent": text}
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in headers.items()
        ):
            raise TypeError(f"expected an object of header texts, got {describe(headers)}")
        arrived = propagate.extract(headers, context=Context())
        current = context.get_current()
        current_span = trace.get_current_span(current).get_span_context()
        if current_span.is_valid and (
            current_span.trace_id == trace.get_current_span(arrived).get_span_context().trace_id
        ):
            return current
        return arrived

    def __repr__(self) -> str:
        return "async_hooks.integrations.opentelemetry.opentelemetry_context.serializer"


#: Where OpenTelemetry's current context lives under ``OTEL_PYTHON_CONTEXT=async_hooks``.
#: It crosses every boundary: in process as the ``Context`` itself, to other
#: processes and services as its propagation headers. Change it only through
#: OpenTelemetry's API, and never ``disable()`` it: the runtime context keeps
#: its variable's methods bound.
opentelemetry_context: AsyncLocalStorage[Context] = AsyncLocalStorage(
    name="opentelemetry_context",
    default=Context(),
    crosses=Crossing.ALL,
    serializer=TraceContextSerializer(),
)


class AsyncHooksRuntimeContext(_RuntimeContext):
    """OpenTelemetry's runtime context backed by the ``opentelemetry_context`` store.

    OpenTelemetry makes one, from the ``opentelemetry_context`` entry point
    named by ``OTEL_PYTHON_CONTEXT``. Every instance shares the one store, so
    the active span and baggage follow whatever the store follows: threads,
    pools and executors through this package's helpers or ``install()``,
    processes and task queues through its declared-store carriers.
    """

    def __init__(self) -> None:
        # The hot path of every span start and end: the store's variable's
        # own C methods, bound, cost what ContextVarsRuntimeContext's methods
        # cost less their Python frame (docs/benchmarks.md). The methods below
        # say what they are; these instance attributes are what runs.
        # The store never holds None (its default is an empty Context), which
        # the variable's types cannot say: hence the ignores.
        set_, reset, get = _bound_var_methods(opentelemetry_context)
        self.attach = set_  # type: ignore[method-assign,assignment]  # the same call, bound
        self.detach = reset  # type: ignore[method-assign,assignment]  # the same call, bound
        self.get_current = get  # type: ignore[method-assign,assignment]  # the same call, bound

    def attach(self, context: Context) -> Token[Context]:
        return _set(opentelemetry_context, context)  # type: ignore[return-value]  # never None: see __init__

    def get_current(self) -> Context:
        return opentelemetry_context.get_store()  # type: ignore[return-value]  # see __init__

    def detach(self, token: Token[Context]) -> None:
        _reset(opentelemetry_context, token)  # type: ignore[arg-type]  # see __init__


# repr() and help() name the module users import it from, also before anything
# imported that module (OpenTelemetry loads this one on its own).
AsyncHooksRuntimeContext.__module__ = "async_hooks.integrations.opentelemetry"
