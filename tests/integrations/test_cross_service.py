"""A store crosses from one service to another over real HTTP on 127.0.0.1.

Service A (FastAPI under uvicorn, behind the ASGI middleware) calls a
service B with an instrumented client; B reports what it sees. There are
three Bs, one per server middleware of this package: FastAPI under uvicorn
(ASGI), aiohttp's web server, and Flask under waitress (WSGI). Nothing but
the HTTP headers links A and B: each server runs on threads of its own,
where A's context never is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import fastapi
import flask
import httpx
import pytest
import requests
from aiohttp import web

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.aiohttp import context_trace_config, setup_request_context
from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.baggage import encode_baggage
from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.requests import instrument_requests
from async_hooks.integrations.wsgi import RequestContextMiddleware as WSGIRequestContextMiddleware
from async_hooks.propagation import JSON

from .servers import aiohttp_server, uvicorn_server, waitress_server

tenant = AsyncLocalStorage[str](name="xs_tenant", crosses=Crossing.REMOTE, serializer=JSON)
cart = AsyncLocalStorage[dict[str, Any]](name="xs_cart", crosses=Crossing.REMOTE, serializer=JSON)
# The default policy: must never reach service B.
secret = AsyncLocalStorage[str](name="xs_secret")


# Service B is ours: the stores may go to it.
pytestmark = pytest.mark.usefixtures("loopback_allowed")


def what_i_see() -> dict[str, Any]:
    return {
        "tenant": tenant.get_store(),
        "cart": cart.get_store(),
        "secret": secret.get_store(),
        "request_id": request_id.get_store(),
    }


def asgi_service_b() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        return what_i_see()

    app.add_middleware(RequestContextMiddleware)
    return app


def aiohttp_service_b() -> web.Application:
    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(what_i_see())

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    setup_request_context(app)
    return app


def wsgi_service_b() -> Any:
    app = flask.Flask("wsgi_service_b")

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        return what_i_see()

    return WSGIRequestContextMiddleware(app)


def service_a() -> fastapi.FastAPI:
    """Calls the B whose base URL is in the ``b_url`` query parameter."""
    app = fastapi.FastAPI()

    @app.get("/call/httpx")
    async def call_with_httpx(b_url: str) -> dict[str, Any]:
        with secret.with_scope("A only"), cart.with_scope({"items": 3}):
            async with instrument_httpx(httpx.AsyncClient()) as client:
                response = await client.get(f"{b_url}/whoami")
        return {"a": what_i_see(), "b": response.json()}

    @app.get("/call/aiohttp")
    async def call_with_aiohttp(b_url: str) -> dict[str, Any]:
        with secret.with_scope("A only"), cart.with_scope({"items": 3}):
            async with (
                aiohttp.ClientSession(trace_configs=[context_trace_config()]) as session,
                session.get(f"{b_url}/whoami") as response,
            ):
                seen_by_b = await response.json()
        return {"a": what_i_see(), "b": seen_by_b}

    # A sync endpoint: FastAPI runs it in a worker thread, in a copy of the
    # request's context.
    @app.get("/call/requests")
    def call_with_requests(b_url: str) -> dict[str, Any]:
        with (
            secret.with_scope("A only"),
            cart.with_scope({"items": 3}),
            instrument_requests(requests.Session()) as session,
        ):
            seen_by_b = session.get(f"{b_url}/whoami", timeout=10).json()
        return {"a": what_i_see(), "b": seen_by_b}

    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def services(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A and the three Bs, async ones on the stdlib loop or on uvloop; shared by the module."""
    loop: str = request.param
    with (
        uvicorn_server(service_a(), loop=loop) as a_url,
        uvicorn_server(asgi_service_b(), loop=loop) as asgi_url,
        aiohttp_server(aiohttp_service_b(), loop=loop) as aiohttp_url,
        waitress_server(wsgi_service_b()) as wsgi_url,
    ):
        yield {"a": a_url, "asgi": asgi_url, "aiohttp": aiohttp_url, "wsgi": wsgi_url}


B_KINDS = ["asgi", "aiohttp", "wsgi"]


@pytest.mark.parametrize("b_kind", B_KINDS)
@pytest.mark.parametrize("client", ["httpx", "aiohttp", "requests"])
def test_stores_and_request_id_cross_from_service_a_to_service_b(
    services: dict[str, str], client: str, b_kind: str
) -> None:
    response = httpx.get(
        f"{services['a']}/call/{client}",
        params={"b_url": services[b_kind]},
        headers={
            "X-Request-ID": "req-from-the-edge",
            "baggage": encode_baggage({"xs_tenant": JSON.dumps("acme")}),
        },
    )
    assert response.status_code == 200
    seen = response.json()
    # A got the tenant and the id from its caller, B got them from A.
    assert seen["a"]["tenant"] == seen["b"]["tenant"] == "acme"
    assert seen["a"]["request_id"] == seen["b"]["request_id"] == "req-from-the-edge"
    # A entered the cart for the call only: B saw it, A's request no longer does.
    assert seen["b"]["cart"] == {"items": 3}
    assert seen["a"]["cart"] is None
    # The in-process store never left A.
    assert seen["b"]["secret"] is None


@pytest.mark.parametrize("b_kind", B_KINDS)
def test_each_request_to_b_starts_clean(services: dict[str, str], b_kind: str) -> None:
    b_url = services[b_kind]
    assert httpx.get(f"{services['a']}/call/httpx", params={"b_url": b_url}).status_code == 200
    seen = httpx.get(f"{b_url}/whoami").json()
    assert (seen["tenant"], seen["cart"]) == (None, None)
    assert seen["request_id"]  # a fresh one, generated by B's middleware


BAD_BAGGAGE = {
    "malformed": "xs_tenant=%ZZ",
    "over 8192 bytes": "xs_tenant=" + "a" * 9000,
    "over 180 members": ",".join(f"m{i}=1" for i in range(181)) + ',xs_tenant="acme"',
    "does not load": "xs_tenant=not-json",
}
# aiohttp's HTTP parser refuses a header line over 8190 bytes itself, before
# any middleware runs: see test_aiohttp_refuses_an_over_long_header_line_itself.
BAD_BAGGAGE_CASES = [
    (b_kind, problem)
    for b_kind in B_KINDS
    for problem in BAD_BAGGAGE
    if (b_kind, problem) != ("aiohttp", "over 8192 bytes")
]


@pytest.mark.parametrize(("b_kind", "problem"), BAD_BAGGAGE_CASES)
def test_bad_baggage_is_rejected_with_a_warning_and_the_request_served(
    services: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    recwarn: pytest.WarningsRecorder,
    b_kind: str,
    problem: str,
) -> None:
    baggage = BAD_BAGGAGE[problem]
    b_url = services[b_kind]
    with caplog.at_level(logging.WARNING):
        response = httpx.get(
            f"{b_url}/whoami", headers={"baggage": baggage, "X-Request-ID": "req-bad"}
        )
    assert response.status_code == 200
    seen = response.json()
    assert seen["tenant"] is None
    assert seen["request_id"] == "req-bad"
    # The middleware says so, in the log or as a warning, naming the baggage.
    reported = [record.getMessage() for record in caplog.records]
    reported += [str(warning.message) for warning in recwarn]
    assert any("baggage" in text.lower() or "xs_tenant" in text for text in reported), (
        problem,
        reported,
    )


def test_aiohttp_refuses_an_over_long_header_line_itself(services: dict[str, str]) -> None:
    url = f"{services['aiohttp']}/whoami"
    response = httpx.get(url, headers={"baggage": BAD_BAGGAGE["over 8192 bytes"]})
    assert response.status_code == 400
    assert httpx.get(url).status_code == 200  # and serves the next request
