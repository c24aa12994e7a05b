"""``async_hooks.integrations.setup``: the common case in one call, with real servers and clients.

A FastAPI app under uvicorn whose endpoint logs from an executor and calls
another service with an httpx client; a Flask app under waitress; an aiohttp
application; a bare WSGI app. Each is set up by ``setup()`` alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse

import aiohttp
import fastapi
import flask
import httpx
import pytest
import requests
from aiohttp import web

from async_hooks.errors import InvalidArgTypeError
from async_hooks.integrations import setup
from async_hooks.integrations.asgi import RequestContextMiddleware as AsgiMiddleware
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.outgoing import (
    OutgoingPolicy,
    get_outgoing_policy,
    set_outgoing_policy,
)
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.wsgi import RequestContextMiddleware as WsgiMiddleware
from async_hooks.propagation import installed, uninstall

from ._echo_server import echo_server
from .servers import aiohttp_server, uvicorn_server, waitress_server


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"[{record.request_id}] {record.getMessage()}")  # type: ignore[attr-defined]


@pytest.fixture
def restored() -> Iterator[None]:
    """Whatever setup() changes globally is put back after the test."""
    policy, was_installed = get_outgoing_policy(), installed()
    try:
        yield
    finally:
        set_outgoing_policy(policy)
        if not was_installed:
            uninstall()


@pytest.fixture(scope="module")
def other_service() -> Iterator[str]:
    with echo_server() as url:
        yield url


@pytest.mark.usefixtures("restored")
def test_a_fastapi_app_its_logs_its_executor_and_its_client(
    loop_name: str, other_service: str
) -> None:
    log = logging.getLogger("test_setup.shop")
    log.setLevel(logging.INFO)
    recorder = Recorder()
    log.addHandler(recorder)
    # A sync client: an AsyncClient would belong to uvicorn's loop, and be
    # left open there. Blocking the loop for one call is harmless here.
    client = httpx.Client()
    api = fastapi.FastAPI()

    @api.get("/order")
    async def order() -> Any:
        log.info("in the handler")
        await asyncio.get_running_loop().run_in_executor(None, log.info, "in an executor")
        return client.get(f"{other_service}/echo").json()

    app = setup(api, logging=recorder, clients=[client], policy=OutgoingPolicy(["127.0.0.1"]))
    assert isinstance(app, AsgiMiddleware)
    assert installed()
    try:
        with uvicorn_server(app, loop=loop_name) as url:
            echoed = httpx.get(f"{url}/order", headers={"X-Request-ID": "setup-1"}).json()
    finally:
        log.removeHandler(recorder)
        client.close()
    assert recorder.lines == ["[setup-1] in the handler", "[setup-1] in an executor"]
    assert echoed["x-request-id"] == ["setup-1"]


@pytest.mark.usefixtures("restored")
def test_flask_aiohttp_and_bare_wsgi_apps(loop_name: str) -> None:
    flask_app = flask.Flask("test_setup")
    flask_app.get("/")(lambda: {"id": request_id.get_store()})
    assert setup(flask_app, logging=False, install=False) is flask_app
    assert isinstance(flask_app.wsgi_app, WsgiMiddleware)
    with waitress_server(flask_app) as url:
        assert httpx.get(f"{url}/", headers={"X-Request-ID": "flask-1"}).json() == {"id": "flask-1"}

    async def index(request: web.Request) -> web.Response:
        return web.json_response({"id": request_id.get_store()})

    aio_app = web.Application()
    aio_app.router.add_get("/", index)
    assert setup(aio_app, logging=False, install=False, header_name="X-Correlation-ID") is aio_app
    with aiohttp_server(aio_app, loop=loop_name) as url:
        response = httpx.get(f"{url}/", headers={"X-Correlation-ID": "aio-1"})
    assert (response.json(), response.headers["x-correlation-id"]) == ({"id": "aio-1"}, "aio-1")

    def bare(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [str(request_id.get_store()).encode()]

    wrapped = setup(bare, logging=False, install=False, trust_incoming=False)
    with waitress_server(wrapped) as url:
        assert len(httpx.get(f"{url}/", headers={"X-Request-ID": "ignored"}).text) == 32


@pytest.mark.usefixtures("restored")
def test_logging_true_filters_the_root_loggers_handlers() -> None:
    root = logging.getLogger()
    recorder = Recorder()
    root.addHandler(recorder)
    try:
        setup(install=False)
        setup(install=False)  # a second call adds no second filter
        assert sum(isinstance(f, StoreFilter) for f in recorder.filters) == 1
        with request_id.with_scope("root-1"):
            logging.getLogger("test_setup.root").warning("hello")
    finally:
        root.removeHandler(recorder)
        for handler in root.handlers:
            for found in [f for f in handler.filters if isinstance(f, StoreFilter)]:
                handler.removeFilter(found)
    assert recorder.lines == ["[root-1] hello"]


@pytest.mark.usefixtures("restored")
def test_bad_arguments_are_refused_before_anything_changes() -> None:
    policy = get_outgoing_policy()

    async def build_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = asyncio.run(build_session())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"clients": [session]}, r"context_trace_config\(\)"),
        ({"clients": [object()]}, "httpx clients or requests sessions"),
        ({"logging": "yes"}, '"logging" argument must be a bool'),
        ({"app": 42}, '"app" argument must be an ASGI, WSGI, Flask or aiohttp'),
        ({"policy": ["*"]}, '"policy" argument must be an OutgoingPolicy'),
    ]
    for arguments, message in cases:
        with pytest.raises(InvalidArgTypeError, match=message):
            setup(**{"policy": OutgoingPolicy(["*"]), **arguments})
        assert get_outgoing_policy() is policy
        assert not installed()
    asyncio.run(session.close())
    requests_session = requests.Session()
    assert setup(clients=[requests_session], logging=False, install=False) is None
    assert type(requests_session.get_adapter("http://x/")).__name__ == "ContextAdapter"
