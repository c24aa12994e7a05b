"""The Django middleware, in the Django project of ``_django_project``, served by
waitress (WSGI) and by uvicorn (ASGI), each in a process of its own, with httpx.

A process per server because Django's settings and logging are per process. The
project calls ``install()`` in its ``wsgi.py``/``asgi.py`` and logs with the
``LOGGING`` recipe of docs/integrations-django.md, to the server's output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from async_hooks.integrations.baggage import encode_baggage
from async_hooks.propagation import JSON

from ._processes import free_port, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "tests.integrations._django_project"
HEX_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Server:
    url: str
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").splitlines()

    def get(self, path: str, headers: Any = None) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10)


def serve(kind: str, options: str, log: Path) -> Iterator[Server]:
    port = free_port()
    if kind == "wsgi":
        # One worker thread: each request reuses the thread (and, without the
        # middleware's own context, the context) of the one before.
        command = ["waitress", "--host=127.0.0.1", f"--port={port}", "--threads=1"]
        command.append(f"{PROJECT}.wsgi:application")
    else:
        command = ["uvicorn", f"{PROJECT}.asgi:application", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--lifespan", "off", "--no-access-log"]
    env = {**os.environ, "ASYNC_HOOKS_TEST_DJANGO_OPTIONS": options}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", *command], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    server = Server(f"http://127.0.0.1:{port}", log)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{kind} server exited:\n{log.read_text()}")
        try:
            server.get("/bad")
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(answers, timeout=30, what=f"{kind} server")
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("django") / f"{request.param}.log"
    yield from serve(request.param, "default", log)


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def custom_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("django") / f"{request.param}-custom.log"
    yield from serve(request.param, "custom", log)


def test_a_sync_view_sees_the_id_and_so_do_its_pool_and_async_to_sync(server: Server) -> None:
    response = server.get("/sync", {"X-Request-ID": "dj-sync"})
    assert response.headers["x-request-id"] == "dj-sync"
    assert response.json() == {
        "store": "dj-sync",
        "header": "dj-sync",
        "leftover": None,
        "region": None,
        "pool": "dj-sync",
        "async_to_sync": ["dj-sync", "from-sync"],
    }
    assert "INFO [dj-sync] shop: in the sync view" in server.lines()


def test_an_async_view_sees_the_id_across_asgirefs_bridges(server: Server) -> None:
    response = server.get("/async", {"X-Request-ID": "dj-async"})
    assert response.headers["x-request-id"] == "dj-async"
    assert response.json() == {
        "store": "dj-async",
        "header": "dj-async",
        "leftover": None,
        "region": None,
        "pool": "dj-async",
        "executor": "dj-async",
        "sync_to_async": ["dj-async", "from-async"],
        "sync_to_async_threads": ["dj-async", "from-async"],
        "round_trip": ["dj-async", "from-sync"],
        "after_sync_to_async": "entered-in-sync",
    }
    assert "INFO [dj-async] shop: in the async view" in server.lines()


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_missing_invalid_or_repeated_id(server: Server, view: str) -> None:
    fresh = server.get(f"/{view}")
    chosen = fresh.headers["x-request-id"]
    assert HEX_ID.fullmatch(chosen)
    assert fresh.json()["store"] == fresh.json()["header"] == chosen

    replaced = server.get(f"/{view}", {"X-Request-ID": "<script>"})
    chosen = replaced.headers["x-request-id"]
    assert HEX_ID.fullmatch(chosen)
    assert replaced.json()["store"] == replaced.json()["header"] == chosen
    # Logged inside the request's context: the line shows the id that replaced it.
    assert (
        f"WARNING [{chosen}] async_hooks.integrations: Rejected an invalid X-Request-ID header "
        f"(8 characters, starting '<script>'): replaced by request id {chosen}"
    ) in server.lines()

    repeated = server.get(f"/{view}", [("X-Request-ID", "first"), ("X-Request-ID", "second")])
    assert repeated.headers["x-request-id"] == "first"
    assert repeated.json()["header"] == "first"


@pytest.mark.parametrize("view", ["sync", "async"])
def test_baggage_enters_the_stores_declared_to_cross(server: Server, view: str) -> None:
    baggage = encode_baggage({"shop.region": JSON.dumps("eu-west"), "vendor": "x"})
    response = server.get(f"/{view}", {"baggage": f"{baggage},bad key=1", "X-Request-ID": "bg-1"})
    assert response.json()["region"] == "eu-west"
    assert response.json()["pool"] == "bg-1"
    # Decoded before the request id is chosen (as for every server): no id on it.
    assert any(
        line.startswith("WARNING [-] async_hooks.integrations: Ignored part of a baggage header")
        and "'bad key'" in line
        for line in server.lines()
    )
    assert server.get(f"/{view}").json()["region"] is None


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_failing_view_answers_with_the_id_logs_it_and_leaves_nothing(
    server: Server, view: str
) -> None:
    failed = server.get(f"/{view}/boom", {"X-Request-ID": f"boom-{view}"})
    assert failed.status_code == 500
    assert failed.headers["x-request-id"] == f"boom-{view}"
    assert f"ERROR [boom-{view}] django.request: Internal Server Error: /{view}/boom" in (
        server.lines()
    )
    assert f"RuntimeError: {view} boom" in server.lines()
    # The next requests (on the same worker thread, under waitress) see none of it.
    for after in ("sync", "async"):
        assert server.get(f"/{after}").json()["leftover"] is None


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_streamed_body_sees_the_id(server: Server, view: str) -> None:
    with httpx.stream("GET", f"{server.url}/{view}/stream", headers={"X-Request-ID": "st-1"}) as r:
        assert r.headers["x-request-id"] == "st-1"
        assert list(r.iter_lines()) == ["st-1", "st-1", "st-1"]


def test_a_returned_4xx_is_logged_outside_the_request(server: Server) -> None:
    # Django logs it after the middleware chain returned: documented.
    response = server.get("/bad", {"X-Request-ID": "bad-1"})
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "bad-1"
    assert "WARNING [-] django.request: Bad Request: /bad" in server.lines()


@pytest.mark.parametrize("view", ["sync", "async"])
def test_the_options_come_from_the_setting(custom_server: Server, view: str) -> None:
    uuid = "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"
    response = custom_server.get(f"/{view}", {"X-Correlation-ID": uuid})
    assert response.headers["x-correlation-id"] == uuid.lower()
    assert "x-request-id" not in response.headers
    assert response.json()["store"] == uuid.lower()

    refused = custom_server.get(f"/{view}", {"X-Correlation-ID": "not-a-uuid"})
    chosen = refused.headers["x-correlation-id"]
    assert re.fullmatch(r"custom-\d+-\d+", chosen)  # from the setting's generate_id
    assert any(
        line.startswith(
            f"WARNING [{chosen}] async_hooks.integrations: Rejected an invalid "
            "X-Correlation-ID header"
        )
        for line in custom_server.lines()
    )


# Run in a fresh interpreter: settings.configure() is once per process.
CHECKS = """
import json
from django.conf import settings
settings.configure(ALLOWED_HOSTS=["*"], ROOT_URLCONF=[], MIDDLEWARE=[])
import django
django.setup()
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import override_settings
from async_hooks.integrations.django import RequestContextMiddleware

out = {}
for name, value in [
    ("not a dict", ["header_name"]),
    ("unknown", {"header": "X-Id", "trust": False}),
    ("not callable", {"validator": 3}),
    ("no such path", {"validator": "no_such_module.check"}),
    ("bad header", {"header_name": "X Id"}),
]:
    with override_settings(ASYNC_HOOKS_REQUEST_CONTEXT=value):
        try:
            RequestContextMiddleware(lambda request: HttpResponse())
        except ImproperlyConfigured as error:
            out[name] = [str(error), type(error.__cause__).__name__]

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from async_hooks.integrations import setup


async def async_view(request):
    return HttpResponse()


# What Django reads to call the middleware as a coroutine function, or not
# (asgiref's check: inspect's own knows the marker from 3.12 on only).
from asgiref.sync import iscoroutinefunction
out["coroutine"] = [
    iscoroutinefunction(RequestContextMiddleware(async_view)),
    iscoroutinefunction(RequestContextMiddleware(lambda request: HttpResponse())),
]
out["setup"] = [
    type(setup(get_asgi_application(), logging=False, install=False)).__module__,
    type(setup(get_wsgi_application(), logging=False, install=False)).__module__,
]
print(json.dumps(out))
"""


def test_wrong_settings_and_setup_on_djangos_handlers() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECKS], capture_output=True, text=True, check=True, timeout=60
    )
    out = json.loads(result.stdout)
    setting = "ASYNC_HOOKS_REQUEST_CONTEXT"
    assert out.pop("coroutine") == [True, False]
    assert out.pop("setup") == ["async_hooks.integrations.asgi", "async_hooks.integrations.wsgi"]
    assert out == {
        "not a dict": [f"{setting} must be a dict of options. Received list", "NoneType"],
        "unknown": [
            f"{setting} has unknown options 'header', 'trust'; the options are generate_id, "
            "header_name, read_baggage, transformer, trust_incoming, validator",
            "NoneType",
        ],
        "not callable": [
            f'{setting}: The "validator" argument must be callable. Received type int (3)',
            "InvalidArgTypeError",
        ],
        "no such path": [
            f"{setting}['validator']: No module named 'no_such_module'",
            "ModuleNotFoundError",
        ],
        "bad header": [
            f"{setting}: 'X Id' is not a valid HTTP header name",
            "InvalidArgValueError",
        ],
    }
