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
    "asgiref",
    "blinker",
    "celery",
    "django",
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
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({OPTIONAL!r}))))
"""


def optional_libraries_imported_by(*modules: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    imported: list[str] = json.loads(result.stdout)
    return imported


def test_integrations_import_no_optional_library() -> None:
    assert optional_libraries_imported_by(*MODULES) == []


def test_an_integration_imports_its_own_library_only() -> None:
    # Django brings asgiref; the middleware needs nothing of the other servers.
    assert optional_libraries_imported_by("async_hooks.integrations.django") == [
        "asgiref",
        "django",
    ]
