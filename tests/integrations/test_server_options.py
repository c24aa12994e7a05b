"""The options of asgi-correlation-id, on the three server middlewares.

``validator=`` and ``transformer=`` for incoming ids, the request headers
the application sees holding the id used, and the warning about a rejected
id logged inside the request's context. ASGI under uvicorn, WSGI under
waitress, aiohttp's server, each with a real httpx client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse

import httpx
import pytest
from aiohttp import web

from async_hooks.errors import InvalidArgTypeError
from async_hooks.integrations.aiohttp import setup_request_context
from async_hooks.integrations.asgi import RequestContextMiddleware as AsgiMiddleware
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.wsgi import RequestContextMiddleware as WsgiMiddleware
from async_hooks.propagation import JSON

from .servers import aiohttp_server, uvicorn_server, waitress_server

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_only(value: str) -> bool:
    return UUID.fullmatch(value.lower()) is not None


def seen(own_header: str | None) -> bytes:
    return JSON.dumps({"store": request_id.get_store(), "header": own_header}).encode()


def asgi_app(**options: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        own = [v.decode() for k, v in scope["headers"] if k == b"x-request-id"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen(",".join(own) or None)})

    return AsgiMiddleware(app, **options)


def wsgi_app(**options: Any) -> Any:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [seen(environ.get("HTTP_X_REQUEST_ID"))]

    return WsgiMiddleware(app, **options)


def aiohttp_app(**options: Any) -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(body=seen(",".join(request.headers.getall("X-Request-ID", ()))))

    app = web.Application()
    app.router.add_get("/", index)
    setup_request_context(app, **options)
    return app


Serve = Callable[..., Any]


@pytest.fixture(params=["asgi", "wsgi", "aiohttp"])
def serve(request: pytest.FixtureRequest, loop_name: str) -> Serve:
    def start(**options: Any) -> Any:
        if request.param == "asgi":
            return uvicorn_server(asgi_app(**options), loop=loop_name)
        if request.param == "wsgi":
            return waitress_server(wsgi_app(**options))
        return aiohttp_server(aiohttp_app(**options), loop=loop_name)

    return start


@pytest.fixture
def warnings_with_ids() -> Iterator[list[logging.LogRecord]]:
    """The records of the integrations' log, each with the request id of where it was logged."""
    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Recorder()
    handler.addFilter(StoreFilter())
    logger = logging.getLogger("async_hooks.integrations")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def get(url: str, headers: Any = None) -> dict[str, Any]:
    response = httpx.get(f"{url}/", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = JSON.loads(response.text)
    assert body["store"] == response.headers["x-request-id"]
    return body


def test_the_app_sees_the_id_used_in_its_request_headers(serve: Serve) -> None:
    with serve() as url:
        assert get(url, {"X-Request-ID": "kept-1"}) == {"store": "kept-1", "header": "kept-1"}
        fresh = get(url)
        assert fresh["header"] == fresh["store"]
        replaced = get(url, {"X-Request-ID": "not valid!"})
        assert replaced["header"] == replaced["store"] != "not valid!"
        repeated = get(url, [("X-Request-ID", "first"), ("X-Request-ID", "second")])
        assert repeated == {"store": "first", "header": "first"}


def test_a_rejected_id_is_logged_in_the_requests_context_naming_its_replacement(
    serve: Serve, warnings_with_ids: list[logging.LogRecord]
) -> None:
    with serve() as url:
        body = get(url, {"X-Request-ID": "<script>"})
    [record] = warnings_with_ids
    assert record.request_id == body["store"]  # type: ignore[attr-defined]
    assert record.getMessage() == (
        "Rejected an invalid X-Request-ID header (8 characters, starting '<script>'): "
        f"replaced by request id {body['store']}"
    )


def test_validator_and_transformer(
    serve: Serve, warnings_with_ids: list[logging.LogRecord]
) -> None:
    uuid = "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"
    with serve(validator=uuid_only, transformer=str.lower) as url:
        assert get(url, {"X-Request-ID": uuid}) == {"store": uuid.lower(), "header": uuid.lower()}
        refused = get(url, {"X-Request-ID": "valid-but-no-uuid"})
    assert len(refused["store"]) == 32
    [record] = warnings_with_ids
    assert "Rejected an invalid X-Request-ID header" in record.getMessage()


def test_what_the_callers_functions_do_wrong_never_fails_a_request(
    serve: Serve, warnings_with_ids: list[logging.LogRecord]
) -> None:
    def raises(value: str) -> bool:
        raise ValueError(value[:5])

    with serve(validator=raises) as url:
        assert len(get(url, {"X-Request-ID": "abc-1"})["store"]) == 32
    with serve(validator=lambda value: True, transformer=lambda value: value + "\x00") as url:
        assert len(get(url, {"X-Request-ID": "abc-2"})["store"]) == 32
    messages = [record.getMessage() for record in warnings_with_ids]
    assert messages[0] == (
        "The validator raised ValueError('abc-1') on an incoming request id; the id is refused"
    )
    assert "Rejected an invalid X-Request-ID header" in messages[1]
    assert "Rejected an invalid X-Request-ID header" in messages[2]


def test_the_options_are_checked_once_at_construction() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(InvalidArgTypeError, match='"validator" argument must be callable'):
        AsgiMiddleware(app, validator="uuid")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"transformer" argument must be callable'):
        WsgiMiddleware(lambda e, s: [], transformer=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"validator" argument must be callable'):
        setup_request_context(web.Application(), validator=None)  # type: ignore[arg-type]
