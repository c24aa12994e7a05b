"""The ASGI middleware under uvicorn (stdlib loop and uvloop) with real
Starlette and FastAPI apps, talked to with httpx."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from async_hooks.errors import InvalidArgValueError
from async_hooks.integrations.asgi import Receive, RequestContextMiddleware, Scope, Send
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.request_id import request_id
from tests.conftest import RunAsync

from .servers import uvicorn_server


class TeapotError(Exception):
    pass


class Recorder:
    """What the apps saw, from the server's threads."""

    def __init__(self) -> None:
        self.background: list[str | None] = []
        self.background_done = threading.Event()


def starlette_app(recorder: Recorder) -> Starlette:
    async def index(request: Request) -> Response:
        return JSONResponse({"seen": request_id.get_store()})

    async def slow(request: Request) -> Response:
        before = request_id.get_store()
        await asyncio.sleep(0.05)
        return JSONResponse({"before": before, "after": request_id.get_store()})

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[str]:
            for _ in range(3):
                await asyncio.sleep(0.01)
                yield f"{request_id.get_store()}\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def with_background(request: Request) -> Response:
        def remember() -> None:
            recorder.background.append(request_id.get_store())
            recorder.background_done.set()

        return PlainTextResponse("ok", background=BackgroundTask(remember))

    async def teapot(request: Request) -> Response:
        raise TeapotError

    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    async def own_header(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"X-Request-ID": "set-by-app"})

    async def on_teapot(request: Request, exc: Exception) -> Response:
        return JSONResponse({"handled": request_id.get_store()}, status_code=418)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return JSONResponse({"crashed": request_id.get_store()}, status_code=500)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/slow", slow),
            Route("/stream", stream),
            Route("/background", with_background),
            Route("/teapot", teapot),
            Route("/crash", crash),
            Route("/own-header", own_header),
        ],
        exception_handlers={TeapotError: on_teapot, Exception: on_crash},
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def base_url(loop_name: str, recorder: Recorder) -> Iterator[str]:
    app = RequestContextMiddleware(starlette_app(recorder))
    with uvicorn_server(app, loop=loop_name) as url:
        yield url


def test_incoming_id_is_the_store_and_comes_back(base_url: str) -> None:
    response = httpx.get(f"{base_url}/", headers={"X-Request-ID": "abc-123.x_Y"})
    assert response.json() == {"seen": "abc-123.x_Y"}
    assert response.headers["x-request-id"] == "abc-123.x_Y"


def test_missing_id_is_generated_and_returned(base_url: str) -> None:
    response = httpx.get(f"{base_url}/")
    generated = response.headers["x-request-id"]
    assert response.json() == {"seen": generated}
    assert re.fullmatch("[0-9a-f]{32}", generated)


@pytest.mark.parametrize(
    "hostile",
    ["x" * 129, "has space", "<script>", "a;b", "é-accent".encode().decode("latin-1")],
)
def test_invalid_incoming_id_is_replaced_and_logged(
    base_url: str, hostile: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        response = httpx.get(f"{base_url}/", headers={b"X-Request-ID": hostile.encode("latin-1")})
    replaced = response.headers["x-request-id"]
    assert replaced != hostile
    assert response.json() == {"seen": replaced}
    assert len(replaced) == 32
    [record] = [r for r in caplog.records if r.name == "async_hooks.integrations"]
    assert record.levelno == logging.WARNING
    assert "Rejected an invalid X-Request-ID header" in record.getMessage()


def test_concurrent_requests_keep_their_own_ids(
    base_url: str, run_async: RunAsync[list[httpx.Response]]
) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url) as client:
            return await asyncio.gather(
                *(client.get("/slow", headers={"X-Request-ID": f"req-{n}"}) for n in range(20))
            )

    responses = run_async(main)
    for number, response in enumerate(responses):
        assert response.json() == {"before": f"req-{number}", "after": f"req-{number}"}


def test_streaming_body_sees_the_store(base_url: str) -> None:
    response = httpx.get(f"{base_url}/stream", headers={"X-Request-ID": "streamed"})
    assert response.text.splitlines() == ["streamed"] * 3
    assert response.headers["x-request-id"] == "streamed"


def test_background_task_sees_the_store(base_url: str, recorder: Recorder) -> None:
    response = httpx.get(f"{base_url}/background", headers={"X-Request-ID": "later"})
    assert response.text == "ok"
    assert recorder.background_done.wait(5)
    assert recorder.background == ["later"]


def test_exception_handlers_see_the_store_and_answer_with_the_id(base_url: str) -> None:
    teapot = httpx.get(f"{base_url}/teapot", headers={"X-Request-ID": "tea"})
    assert (teapot.status_code, teapot.json()) == (418, {"handled": "tea"})
    assert teapot.headers["x-request-id"] == "tea"
    # The 500 handler runs in Starlette's outermost layer: this middleware
    # wraps the whole app here, so that layer is inside the request context.
    crash = httpx.get(f"{base_url}/crash", headers={"X-Request-ID": "crash"})
    assert (crash.status_code, crash.json()) == (500, {"crashed": "crash"})
    assert crash.headers["x-request-id"] == "crash"


def test_a_header_set_by_the_app_is_kept(base_url: str) -> None:
    response = httpx.get(f"{base_url}/own-header", headers={"X-Request-ID": "incoming"})
    assert response.headers.get_list("x-request-id") == ["set-by-app"]


def test_the_store_is_left_clean_after_each_request(base_url: str) -> None:
    # Several requests on one keep-alive connection: none sees another's id.
    with httpx.Client(base_url=base_url) as client:
        ids = [client.get("/").json()["seen"] for _ in range(5)]
    assert len(set(ids)) == 5


def test_options_header_name_and_distrust(loop_name: str, recorder: Recorder) -> None:
    app = Starlette(
        routes=starlette_app(recorder).routes,
        middleware=[
            Middleware(RequestContextMiddleware, header_name="X-Correlation-ID"),
        ],
    )
    with uvicorn_server(app, loop=loop_name) as url:
        response = httpx.get(f"{url}/", headers={"X-Correlation-ID": "corr-1"})
        assert response.json() == {"seen": "corr-1"}
        assert response.headers["x-correlation-id"] == "corr-1"
        assert "x-request-id" not in response.headers

    distrusting = RequestContextMiddleware(starlette_app(recorder), trust_incoming=False)
    with uvicorn_server(distrusting, loop=loop_name) as url:
        response = httpx.get(f"{url}/", headers={"X-Request-ID": "spoofed"})
        assert response.json()["seen"] == response.headers["x-request-id"] != "spoofed"


def test_bad_options_are_refused() -> None:
    app = starlette_app(Recorder())
    with pytest.raises(InvalidArgValueError, match="'X Request' is not a valid HTTP header name"):
        RequestContextMiddleware(app, header_name="X Request")
    with pytest.raises(TypeError, match='"generate_id" argument must be callable'):
        RequestContextMiddleware(app, generate_id="uuid")  # type: ignore[arg-type]


def fastapi_app(log_output: io.StringIO) -> FastAPI:
    log = logging.Logger("fastapi-test")
    handler = logging.StreamHandler(log_output)
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    handler.addFilter(StoreFilter())
    log.addHandler(handler)
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)

    def current_id() -> str | None:
        return request_id.get_store()

    @app.get("/async")
    async def async_endpoint(
        tasks: BackgroundTasks, dependency_saw: str | None = Depends(current_id)
    ) -> dict[str, str | None]:
        log.warning("in async endpoint")
        tasks.add_task(log.warning, "in background task")
        return {"dependency": dependency_saw, "endpoint": request_id.get_store()}

    @app.get("/sync")
    def sync_endpoint() -> dict[str, str | None]:
        # FastAPI runs plain functions on a worker thread.
        log.warning("in sync endpoint")
        return {"endpoint": request_id.get_store()}

    return app


def test_fastapi_endpoints_dependencies_background_and_logs(loop_name: str) -> None:
    log_output = io.StringIO()
    with uvicorn_server(fastapi_app(log_output), loop=loop_name) as url:
        first = httpx.get(f"{url}/async", headers={"X-Request-ID": "fast-1"})
        second = httpx.get(f"{url}/sync", headers={"X-Request-ID": "fast-2"})
    assert first.json() == {"dependency": "fast-1", "endpoint": "fast-1"}
    assert first.headers["x-request-id"] == "fast-1"
    assert second.json() == {"endpoint": "fast-2"}
    assert second.headers["x-request-id"] == "fast-2"
    assert log_output.getvalue().splitlines() == [
        "fast-1 in async endpoint",
        "fast-1 in background task",
        "fast-2 in sync endpoint",
    ]


# No WebSocket library for uvicorn is installed here, so the WebSocket and
# lifespan paths are driven at the ASGI protocol level, with the real
# middleware and a real (bare) ASGI app.


def test_websocket_accept_carries_the_id_and_the_store(run_async: RunAsync[None]) -> None:
    sent: list[MutableMapping[str, Any]] = []
    seen: list[str | None] = []

    async def websocket_app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        seen.append(request_id.get_store())
        await send({"type": "websocket.accept", "headers": [(b"x-other", b"1")]})
        await send({"type": "websocket.send", "text": str(request_id.get_store())})

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        scope = {"type": "websocket", "headers": [(b"x-request-id", b"ws-1")]}
        await RequestContextMiddleware(websocket_app)(scope, receive, send)
        assert request_id.get_store() is None  # reset after the connection

    run_async(main)
    assert seen == ["ws-1"]
    assert sent[0]["headers"] == [(b"x-other", b"1"), (b"x-request-id", b"ws-1")]
    assert sent[1] == {"type": "websocket.send", "text": "ws-1"}


def test_lifespan_passes_through_untouched(run_async: RunAsync[None]) -> None:
    seen: list[tuple[str, str | None]] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["type"], request_id.get_store()))
        await send({"type": "lifespan.startup.complete"})

    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await RequestContextMiddleware(lifespan_app)({"type": "lifespan"}, receive, send)

    run_async(main)
    assert seen == [("lifespan", None)]
    assert sent == [{"type": "lifespan.startup.complete"}]
