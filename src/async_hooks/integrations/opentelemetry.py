"""OpenTelemetry: the active span and baggage follow every boundary this package carries.

Set ``OTEL_PYTHON_CONTEXT=async_hooks`` before OpenTelemetry is first
imported; then add the two small helpers where wanted::

    provider.add_span_processor(StoreSpanAttributes(tenant))  # spans get tenant=...
    handler.addFilter(TraceFilter())  # records get otelTraceID/otelSpanID

See docs/opentelemetry.md for what crosses where, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .._extras import missing_extra

try:
    # First of all: with OTEL_PYTHON_CONTEXT=async_hooks this import loads
    # _otel_context through the entry point, which must not find this module
    # half-imported as its own target.
    import opentelemetry.context
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
except ImportError as error:  # "... needs opentelemetry: pip install 'async-hooks[otel]'"
    raise missing_extra(__name__, "opentelemetry", extra="otel") from error

from .._storage import AsyncLocalStorage
from .._validation import describe
from ..errors import InvalidArgTypeError, InvalidArgValueError
from . import _otel_context

__all__ = [
    "AsyncHooksRuntimeContext",
    "StoreSpanAttributes",
    "TraceFilter",
    "opentelemetry_context",
]

# Re-exported: the entry point's target must live in a module that
# OpenTelemetry can import while its own context package is half-imported.
AsyncHooksRuntimeContext = _otel_context.AsyncHooksRuntimeContext
opentelemetry_context = _otel_context.opentelemetry_context

# What OpenTelemetry accepts as an attribute value as it is.
_PLAIN_ATTRIBUTE = (str, bool, int, float)


class StoreSpanAttributes(SpanProcessor):
    """Copies the values of chosen stores onto every span started inside them.

    Each store given positionally becomes the attribute of its own ``name``
    (it must have one); ``attributes`` maps attribute names of your choice to
    stores. A store without a value where the span starts adds nothing. A
    str, bool, int or float is copied as it is; any other value as its
    store's serializer text, or its ``repr()`` for a store without one.
    Only the chosen stores are read: no other store ever reaches a span.
    """

    def __init__(
        self,
        *stores: AsyncLocalStorage[Any],
        attributes: Mapping[str, AsyncLocalStorage[Any]] | None = None,
    ) -> None:
        chosen: dict[str, AsyncLocalStorage[Any]] = {}
        for store in stores:
            _require_store(store, "stores")
            if not store.name:
                raise InvalidArgValueError(
                    "A store given to StoreSpanAttributes without an attribute name needs a "
                    f"name of its own; pass attributes={{'name': store}}. Received {store!r}"
                )
            chosen[store.name] = store
        if attributes is not None:
            if not isinstance(attributes, Mapping):
                raise InvalidArgTypeError(
                    'The "attributes" argument must be a mapping of attribute names to '
                    f"AsyncLocalStorage. Received {describe(attributes)}"
                )
            for key, store in attributes.items():
                if not isinstance(key, str) or not key:
                    raise InvalidArgValueError(
                        f"Span attribute names must be non-empty str. Received {describe(key)}"
                    )
                _require_store(store, f"attributes[{key!r}]")
                chosen[key] = store
        # The store itself is kept, not its bound get_store: disable() gives
        # the store a new one.
        self._chosen = tuple(chosen.items())

    def on_start(
        self, span: Span, parent_context: opentelemetry.context.Context | None = None
    ) -> None:
        for key, store in self._chosen:
            value = store.get_store()
            if value is not None:
                span.set_attribute(key, _attribute_value(store, value))

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _require_store(store: object, argument: str) -> None:
    if not isinstance(store, AsyncLocalStorage):
        raise InvalidArgTypeError(
            f'The "{argument}" argument must be AsyncLocalStorage. Received {describe(store)}'
        )


def _attribute_value(store: AsyncLocalStorage[Any], value: object) -> Any:
    if isinstance(value, _PLAIN_ATTRIBUTE):
        return value
    serializer = store.serializer
    if serializer is None:
        return repr(value)
    try:
        return serializer.dumps(value)
    except Exception:
        # A span attribute is a diagnostic: a value that will not serialize
        # must not fail the code that starts the span.
        return repr(value)


class TraceFilter(logging.Filter):
    """Put the current trace and span ids on every record, as ``otelTraceID``/``otelSpanID``.

    The names and formats are those of OpenTelemetry's logging
    instrumentation: 32 and 16 lowercase hex digits, ``"0"`` outside any
    span. Beside ``StoreFilter`` on the same handler, a log line shows the
    request id next to the trace id. A value passed with ``extra=`` is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        attributes = record.__dict__
        if "otelTraceID" not in attributes or "otelSpanID" not in attributes:
            span_context = trace.get_current_span().get_span_context()
            if span_context.is_valid:
                trace_id = format(span_context.trace_id, "032x")
                span_id = format(span_context.span_id, "016x")
            else:
                trace_id = span_id = "0"
            attributes.setdefault("otelTraceID", trace_id)
            attributes.setdefault("otelSpanID", span_id)
        return True
