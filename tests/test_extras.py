"""Every module that needs an optional library fails the same way without it
(private ``_extras.missing_extra``): an ``ImportError`` that names the module,
the library and the extra to install. Each case runs in a fresh interpreter in
which the library cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"

# (module, library it needs, library hidden, extra that brings it)
NEEDS = [
    ("async_hooks.integrations.aiohttp", "aiohttp", "aiohttp", "aiohttp"),
    ("async_hooks.integrations.httpx", "httpx", "httpx", "httpx"),
    ("async_hooks.integrations.requests", "requests", "requests", "requests"),
    ("async_hooks.integrations.celery", "celery", "celery", "celery"),
    ("async_hooks.integrations.django", "django", "django", "django"),
    ("async_hooks.integrations.rq", "rq", "rq", "rq"),
    ("async_hooks.integrations.dramatiq", "dramatiq", "dramatiq", "dramatiq"),
    ("async_hooks.integrations.pyee", "pyee", "pyee", "pyee"),
    ("async_hooks.integrations.blinker", "blinker", "blinker", "blinker"),
    ("async_hooks.integrations.gevent", "gevent", "gevent", "gevent"),
    # gevent cannot start without greenlet, which the same extra brings.
    ("async_hooks.integrations.gevent", "gevent", "greenlet", "gevent"),
    ("async_hooks.integrations.opentelemetry", "opentelemetry", "opentelemetry", "otel"),
    # The span processor needs the SDK, which the same extra brings.
    ("async_hooks.integrations.opentelemetry", "opentelemetry", "opentelemetry.sdk", "otel"),
    ("async_hooks.trio", "trio", "trio", "trio"),
]

PROGRAM = """
import importlib, json, sys
module, hidden = sys.argv[1:]
sys.modules[hidden] = None  # makes `import hidden` fail, as if it were not installed
try:
    importlib.import_module(module)
except ImportError as error:
    print(json.dumps([type(error).__name__, str(error), error.name]))
else:
    print(json.dumps(None))
"""


@pytest.mark.parametrize(("module", "library", "hidden", "extra"), NEEDS)
def test_a_missing_library_names_the_extra_to_install(
    module: str, library: str, hidden: str, extra: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, module, hidden],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == [
        "ImportError",
        f"{module} needs {library}: pip install 'async-hooks[{extra}]'",
        library,
    ]


def test_each_extra_named_is_declared() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    for _, library, _, extra in NEEDS:
        assert extra in declared
        assert any(requirement.startswith(library) for requirement in declared[extra])
