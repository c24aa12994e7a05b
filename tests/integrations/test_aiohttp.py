"""aiohttp's web server with setup_request_context, on 127.0.0.1, talked to
with aiohttp's client, on the stdlib loop and on uvloop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from async_hooks.integrations.aiohttp import REQUEST_ID_KEY, setup_request_context
from async_hooks.integrations.request_id import request_id
from tests.conftest import RunAsync


class TeapotError(Exception):
    pass


def make_app(header_name: str) -> web.Application:
    @web.middleware
    async def teapot_handler(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except TeapotError:
            return web.json_response({"handled": request_id.get_store()}, status=418)

    async def index(request: web.Request) -> web.Response:
        before = request_id.get_store()
        await asyncio.sleep(0.02)
        return web.json_response(
            {"before": before, "after": request_id.get_store(), "key": request[REQUEST_ID_KEY]}
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(3):
            await asyncio.sleep(0.01)
            await response.write(f"{request_id.get_store()}\n".encode())
        await response.write_eof()
        return response

    async def teapot(request: web.Request) -> web.Response:
        raise TeapotError

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app = web.Application(middlewares=[teapot_handler])
    app.router.add_get("/", index)
    app.router.add_get("/stream", stream)
    app.router.add_get("/teapot", teapot)
    app.router.add_get("/crash", crash)
    setup_request_context(app, header_name=header_name)
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


Check = Callable[[aiohttp.ClientSession], Awaitable[None]]


def serve_and(run_async: RunAsync[None], check: Check, header_name: str = "X-Request-ID") -> None:
    async def main() -> None:
        async with serving(make_app(header_name)) as session:
            await check(session)

    run_async(main)


def test_incoming_id_is_the_store_and_comes_back(run_async: RunAsync[None]) -> None:
    async def check(session: aiohttp.ClientSession) -> None:
        async with session.get("/", headers={"X-Request-ID": "aio-1"}) as response:
            assert await response.json() == {"before": "aio-1", "after": "aio-1", "key": "aio-1"}
            assert response.headers["X-Request-ID"] == "aio-1"
        async with session.get("/") as response:
            generated = response.headers["X-Request-ID"]
            assert len(generated) == 32
            assert (await response.json())["after"] == generated

    serve_and(run_async, check)


def test_invalid_id_is_replaced_and_logged(
    run_async: RunAsync[None], caplog: pytest.LogCaptureFixture
) -> None:
    async def check(session: aiohttp.ClientSession) -> None:
        async with session.get("/", headers={"X-Request-ID": "bad id!"}) as response:
            replaced = response.headers["X-Request-ID"]
            assert replaced != "bad id!"
            assert (await response.json())["after"] == replaced

    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        serve_and(run_async, check)
    [record] = [r for r in caplog.records if r.name == "async_hooks.integrations"]
    assert "Rejected an invalid X-Request-ID header" in record.getMessage()


def test_concurrent_requests_keep_their_own_ids(run_async: RunAsync[None]) -> None:
    async def fetch(session: aiohttp.ClientSession, number: int) -> None:
        async with session.get("/", headers={"X-Request-ID": f"c-{number}"}) as response:
            body = await response.json()
        assert (body["before"], body["after"]) == (f"c-{number}", f"c-{number}")

    async def check(session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(fetch(session, n) for n in range(20)))

    serve_and(run_async, check)


def test_streamed_responses_errors_and_crashes_carry_the_id(run_async: RunAsync[None]) -> None:
    async def check(session: aiohttp.ClientSession) -> None:
        async with session.get("/stream", headers={"X-Request-ID": "s"}) as response:
            assert (await response.text()).splitlines() == ["s", "s", "s"]
            assert response.headers["X-Request-ID"] == "s"
        async with session.get("/teapot", headers={"X-Request-ID": "t"}) as response:
            assert (response.status, await response.json()) == (418, {"handled": "t"})
            assert response.headers["X-Request-ID"] == "t"
        async with session.get("/missing", headers={"X-Request-ID": "m"}) as response:
            assert response.status == 404
            assert response.headers["X-Request-ID"] == "m"
        async with session.get("/crash", headers={"X-Request-ID": "c"}) as response:
            assert response.status == 500
            assert response.headers["X-Request-ID"] == "c"

    # aiohttp logs the crash of /crash on its own logger: expected here.
    logging.getLogger("aiohttp.server").disabled = True
    try:
        serve_and(run_async, check)
    finally:
        logging.getLogger("aiohttp.server").disabled = False


def test_custom_header_name(run_async: RunAsync[None]) -> None:
    async def check(session: aiohttp.ClientSession) -> None:
        async with session.get("/", headers={"X-Correlation-ID": "corr"}) as response:
            assert (await response.json())["after"] == "corr"
            assert response.headers["X-Correlation-ID"] == "corr"
            assert "X-Request-ID" not in response.headers

    serve_and(run_async, check, header_name="X-Correlation-ID")
