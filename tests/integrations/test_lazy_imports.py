"""Optional libraries stay optional: importing the integrations that do not
need one never imports it (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = [
    "async_hooks",
    "async_hooks.integrations",
    "async_hooks.integrations.request_id",
    "async_hooks.integrations.baggage",
    "async_hooks.integrations.logging",
    "async_hooks.integrations.structlog",
    "async_hooks.integrations.loguru",
    "async_hooks.integrations.asgi",
    "async_hooks.integrations.wsgi",
]
OPTIONAL = [
    "aiohttp",
    "fastapi",
    "flask",
    "loguru",
    "pythonjsonlogger",
    "starlette",
    "structlog",
    "uvicorn",
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
