"""Carrying context across every boundary where ``contextvars`` alone loses or leaks it.

See docs/propagation.md for the table of boundaries, what bare
``contextvars`` does at each, and the helper that closes it.
"""

from .._store_policy import Crossing, Serializer
from .policy import JSON, JsonSerializer, capture_context, export_stores, import_stores

__all__ = [
    "JSON",
    "Crossing",
    "JsonSerializer",
    "Serializer",
    "capture_context",
    "export_stores",
    "import_stores",
]
