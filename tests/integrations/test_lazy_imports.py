"""Optional libraries stay optional: importing a face, or an integration
that does not need one, never imports it (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

# The faces, and the integration modules whose library is optional to them.
MODULES = [
    "async_hooks",
    "async_hooks.propagation",
    "async_hooks.diagnostics",
    "async_hooks.errors",
    "async_hooks.integrations",
    "async_hooks.integrations.request_id",
    "async_hooks.integrations.baggage",
    "async_hooks.integrations.outgoing",
    "async_hooks.integrations.logging",
    "async_hooks.integrations.structlog",
    "async_hooks.integrations.loguru",
    "async_hooks.integrations.asgi",
    "async_hooks.integrations.wsgi",
]
# Every library of an extra, and the frameworks the tests use.
OPTIONAL = [
    "aiohttp",
    "blinker",
    "celery",
    "dramatiq",
    "fastapi",
    "flask",
    "gevent",
    "greenlet",
    "httpx",
    "loguru",
    "opentelemetry",
    "pyee",
    "pythonjsonlogger",
    "requests",
    "rq",
    "starlette",
    "structlog",
    "trio",
    "uvicorn",
    "uvloop",
    "waitress",
]

PROGRAM = f"""
import importlib, json, sys
for name in {MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({OPTIONAL!r}))))
"""


def test_integrations_import_no_optional_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == []
