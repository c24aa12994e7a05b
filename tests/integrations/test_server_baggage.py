"""The reading side of W3C baggage, the same for the three server
integrations: ASGI under uvicorn, WSGI under waitress, aiohttp's server."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse

import httpx
import pytest
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.aiohttp import setup_request_context
from async_hooks.integrations.asgi import RequestContextMiddleware as AsgiMiddleware
from async_hooks.integrations.baggage import encode_baggage
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.wsgi import RequestContextMiddleware as WsgiMiddleware
from async_hooks.propagation import JSON

from .servers import aiohttp_server, uvicorn_server, waitress_server

# Declared to cross to other services, as the other side would declare it.
tenant: AsyncLocalStorage[dict[str, Any]] = AsyncLocalStorage(
    name="integrations_test_tenant", crosses=Crossing.REMOTE, serializer=JSON
)
# Crosses processes but not machines: baggage must not set it.
local_only: AsyncLocalStorage[str] = AsyncLocalStorage(
    name="integrations_test_local_only", crosses=Crossing.PROCESSES, serializer=JSON
)


def seen() -> dict[str, Any]:
    return {
        "tenant": tenant.get_store(),
        "local_only": local_only.get_store(),
        "request_id": request_id.get_store(),
    }


def asgi_app() -> Any:
    async def index(request: Request) -> Response:
        return JSONResponse(seen())

    return AsgiMiddleware(Starlette(routes=[Route("/", index)]))


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [JSON.dumps(seen()).encode()]


def aiohttp_app() -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.json_response(seen())

    app = web.Application()
    app.router.add_get("/", index)
    setup_request_context(app)
    return app


@pytest.fixture(params=["asgi", "wsgi", "aiohttp"])
def base_url(request: pytest.FixtureRequest, loop_name: str) -> Iterator[str]:
    if request.param == "asgi":
        with uvicorn_server(asgi_app(), loop=loop_name) as url:
            yield url
    elif request.param == "wsgi":
        with waitress_server(WsgiMiddleware(wsgi_app)) as url:
            yield url
    else:
        with aiohttp_server(aiohttp_app(), loop=loop_name) as url:
            yield url


def get(url: str, **headers: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/", headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_declared_stores_are_entered_for_the_request_only(base_url: str) -> None:
    baggage = encode_baggage(
        {"integrations_test_tenant": JSON.dumps({"id": 7, "name": 'Zürich, "AG"'})}
    )
    body = get(base_url, baggage=baggage)
    assert body["tenant"] == {"id": 7, "name": 'Zürich, "AG"'}
    assert get(base_url)["tenant"] is None  # nothing left behind for the next request


def test_foreign_and_undeclared_members_are_ignored(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    baggage = encode_baggage(
        {
            "vendor.trace": "abc",
            "integrations_test_local_only": JSON.dumps("not over the network"),
            "integrations_test_tenant": JSON.dumps({"id": 1}),
        }
    )
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        body = get(base_url, baggage=baggage)
    assert body["tenant"] == {"id": 1}
    assert body["local_only"] is None
    assert not [r for r in caplog.records if r.name == "async_hooks.integrations"]


def test_several_baggage_headers_are_one_list(base_url: str) -> None:
    response = httpx.get(
        f"{base_url}/",
        headers=[
            ("baggage", "vendor=1"),
            ("baggage", encode_baggage({"integrations_test_tenant": JSON.dumps({"id": 2})})),
        ],
    )
    assert response.json()["tenant"] == {"id": 2}


@pytest.mark.parametrize(
    ("baggage", "logged"),
    [
        ("integrations_test_tenant=%7B", "Ignored the baggage member 'integrations_test_tenant'"),
        ("integrations_test_tenant=1 2", "Ignored an invalid baggage header"),
        ("k=%zz", "malformed '%' escape"),
        (",".join(f"k{n}=v" for n in range(181)), "181 members; the W3C limit is 180"),
    ],
)
def test_bad_baggage_is_logged_and_the_request_served(
    base_url: str, baggage: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        body = get(base_url, baggage=baggage)
    assert body["tenant"] is None
    messages = [r.getMessage() for r in caplog.records if r.name == "async_hooks.integrations"]
    assert len(messages) == 1
    assert logged in messages[0]


def test_oversized_baggage_is_refused(loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    # aiohttp refuses any header over 8190 bytes by itself: ASGI and WSGI only.
    baggage = "integrations_test_tenant=" + "%7B" * 3000
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        with uvicorn_server(asgi_app(), loop=loop_name) as url:
            assert get(url, baggage=baggage)["tenant"] is None
        with waitress_server(WsgiMiddleware(wsgi_app)) as url:
            assert get(url, baggage=baggage)["tenant"] is None
    messages = [r.getMessage() for r in caplog.records if r.name == "async_hooks.integrations"]
    assert len(messages) == 2
    assert all("9025 bytes; the W3C limit is 8192" in m for m in messages)


def test_request_id_from_baggage_is_a_checked_fallback(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def carried(value: str) -> str:
        return encode_baggage({"request_id": JSON.dumps(value)})

    assert get(base_url, baggage=carried("from-baggage"))["request_id"] == "from-baggage"
    both = get(base_url, baggage=carried("from-baggage"), X_Request_ID="from-header")
    assert both["request_id"] == "from-header"
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        hostile = get(base_url, baggage=carried("<script>"))
    assert len(hostile["request_id"]) == 32
    [message] = [r.getMessage() for r in caplog.records if r.name == "async_hooks.integrations"]
    assert "Rejected an invalid 'request_id' baggage member" in message


def test_an_invalid_header_id_is_replaced_not_taken_from_baggage(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The request-id header decides when there is one: baggage is the
    # fallback for a missing header only, the same rule as Celery's worker.
    baggage = encode_baggage({"request_id": JSON.dumps("from-baggage")})
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        body = get(base_url, baggage=baggage, X_Request_ID="not valid!")
    assert len(body["request_id"]) == 32
    [message] = [r.getMessage() for r in caplog.records if r.name == "async_hooks.integrations"]
    assert "Rejected an invalid X-Request-ID header" in message
