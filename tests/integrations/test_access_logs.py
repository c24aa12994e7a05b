"""The request id on the access log lines of uvicorn and gunicorn: the recipes of
docs/integrations.md, run by the real servers, each in a process of its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ._processes import free_port, stop, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"

APP = """
from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.wsgi import RequestContextMiddleware as WsgiMiddleware


async def bare(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def bare_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = RequestContextMiddleware(bare)
application = WsgiMiddleware(bare_wsgi)
"""


def uvicorn_log_config() -> dict[str, Any]:
    """The ``LOGGING`` of the uvicorn recipe, taken from the docs themselves."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    [recipe] = [block for block in blocks if '"uvicorn.access"' in block]
    namespace: dict[str, Any] = {}
    exec(recipe.replace("logging.config.dictConfig(LOGGING)", ""), namespace)
    config: dict[str, Any] = namespace["LOGGING"]
    return config


@contextmanager
def serving(command: list[str], cwd: Path, log: Path) -> Iterator[str]:
    """Run ``python -m <command>`` in ``cwd``, ``{port}`` in it replaced by a free port."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *(part.format(port=port) for part in command)],
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, process), timeout=30, what=command[0])
        yield url
    finally:
        stop(process)


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"the server exited with {process.returncode}")
    try:
        httpx.get(f"{url}/", headers={"X-Request-ID": "warm-up"})
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "access_app.py").write_text(APP, encoding="utf-8")
    return tmp_path


def test_uvicorns_access_log_carries_the_request_id(app_dir: Path) -> None:
    (app_dir / "logging.json").write_text(json.dumps(uvicorn_log_config()), encoding="utf-8")
    log = app_dir / "uvicorn.log"
    command = [
        *("uvicorn", "access_app:app", "--host", "127.0.0.1", "--port", "{port}"),
        *("--log-config", "logging.json"),
    ]
    with serving(command, app_dir, log) as url:
        httpx.get(f"{url}/", headers={"X-Request-ID": "access-1"})
        fresh = httpx.get(f"{url}/").headers["x-request-id"]
    lines = log.read_text(encoding="utf-8").splitlines()
    assert any(
        re.search(r'\[access-1\] 127\.0\.0\.1:\d+ - "GET / HTTP/1\.1" 200', line) for line in lines
    )
    assert any(f"[{fresh}]" in line for line in lines)


def test_gunicorns_access_log_carries_the_request_id(app_dir: Path) -> None:
    log = app_dir / "gunicorn.log"
    # Doubled braces: the command goes through str.format for the port.
    access_format = '%(h)s "%(r)s" %(s)s [%({{x-request-id}}o)s]'
    command = [
        *("gunicorn", "--bind", "127.0.0.1:{port}"),
        *("--access-logfile", "-", "--access-logformat", access_format),
        "access_app:application",
    ]
    with serving(command, app_dir, log) as url:
        httpx.get(f"{url}/", headers={"X-Request-ID": "access-2"})
        replaced = httpx.get(f"{url}/", headers={"X-Request-ID": "not valid!"})
    lines = log.read_text(encoding="utf-8").splitlines()
    assert '127.0.0.1 "GET / HTTP/1.1" 200 [access-2]' in lines
    assert f'127.0.0.1 "GET / HTTP/1.1" 200 [{replaced.headers["x-request-id"]}]' in lines
