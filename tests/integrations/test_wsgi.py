"""The WSGI middleware under waitress (a threaded server) with a real Flask
app and a bare WSGI app, talked to with httpx."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.types import StartResponse

import flask
import httpx
import pytest

from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.wsgi import RequestContextMiddleware

from .servers import waitress_server


class TeapotError(Exception):
    pass


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def record(self, where: str) -> None:
        with self.lock:
            self.seen.append((where, request_id.get_store()))


def flask_app(recorder: Recorder) -> flask.Flask:
    app = flask.Flask("wsgi-test")

    @app.get("/")
    def index() -> dict[str, Any]:
        return {
            "seen": request_id.get_store(),
            "environ": flask.request.environ.get("async_hooks.request_id"),
        }

    @app.get("/slow")
    def slow() -> dict[str, Any]:
        before = request_id.get_store()
        time.sleep(0.05)
        return {"before": before, "after": request_id.get_store(), "thread": threading.get_ident()}

    @app.get("/stream")
    def stream() -> flask.Response:
        # No stream_with_context: the body is produced after the view
        # returned, while the server iterates it.
        def lines() -> Iterator[str]:
            for _ in range(3):
                yield f"{request_id.get_store()}\n"

        return flask.Response(lines(), mimetype="text/plain")

    @app.get("/teapot")
    def teapot() -> str:
        raise TeapotError

    @app.errorhandler(TeapotError)
    def on_teapot(error: TeapotError) -> tuple[dict[str, Any], int]:
        return {"handled": request_id.get_store()}, 418

    @app.teardown_request
    def teardown(error: BaseException | None) -> None:
        recorder.record("teardown")

    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def base_url(recorder: Recorder) -> Iterator[str]:
    app = flask_app(recorder)
    app.wsgi_app = RequestContextMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    with waitress_server(app) as url:
        yield url


def test_incoming_id_is_the_store_and_comes_back(base_url: str, recorder: Recorder) -> None:
    response = httpx.get(f"{base_url}/", headers={"X-Request-ID": "flask-1"})
    assert response.json() == {"seen": "flask-1", "environ": "flask-1"}
    assert response.headers["x-request-id"] == "flask-1"
    assert recorder.seen == [("teardown", "flask-1")]


def test_missing_or_invalid_id_is_replaced(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    fresh = httpx.get(f"{base_url}/")
    assert fresh.json()["seen"] == fresh.headers["x-request-id"]
    assert len(fresh.headers["x-request-id"]) == 32
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        hostile = httpx.get(f"{base_url}/", headers={"X-Request-ID": "x" * 200})
    replaced = hostile.headers["x-request-id"]
    assert hostile.json()["seen"] == replaced
    assert len(replaced) == 32
    assert any(
        "Rejected an invalid X-Request-ID header (200 characters" in r.getMessage()
        for r in caplog.records
    )


def test_concurrent_requests_on_worker_threads_keep_their_ids(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client, ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda n: client.get("/slow", headers={"X-Request-ID": f"t-{n}"}), range(16))
        )
    threads = set()
    for number, response in enumerate(responses):
        body = response.json()
        assert (body["before"], body["after"]) == (f"t-{number}", f"t-{number}")
        threads.add(body["thread"])
    assert len(threads) > 1  # the requests really ran on several worker threads


def test_streamed_body_sees_the_store(base_url: str) -> None:
    response = httpx.get(f"{base_url}/stream", headers={"X-Request-ID": "streamed"})
    assert response.text.splitlines() == ["streamed"] * 3


def test_error_handlers_see_the_store(base_url: str) -> None:
    response = httpx.get(f"{base_url}/teapot", headers={"X-Request-ID": "tea"})
    assert (response.status_code, response.json()) == (418, {"handled": "tea"})
    assert response.headers["x-request-id"] == "tea"


def test_worker_threads_are_left_clean(base_url: str) -> None:
    # One worker thread serves every request: no id survives its request.
    with httpx.Client(base_url=base_url) as client:
        ids = [client.get("/").json()["seen"] for _ in range(6)]
    assert len(set(ids)) == 6


def bare_app(recorder: Recorder) -> Any:
    """A WSGI app without a framework, whose body has a close() method."""

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            recorder.record("iterate")
            yield b"body"

        def close(self) -> None:
            recorder.record("close")
            recorder.closed.set()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        recorder.record("call")
        headers = [("Content-Type", "text/plain")]
        if environ["PATH_INFO"] == "/own":
            headers.append(("x-correlation-id", "set-by-app"))
        start_response("200 OK", headers)
        return Body()

    return app


def test_bare_app_with_custom_header_and_close(recorder: Recorder) -> None:
    middleware = RequestContextMiddleware(bare_app(recorder), header_name="X-Correlation-ID")
    with waitress_server(middleware, threads=1) as url:
        response = httpx.get(f"{url}/", headers={"X-Correlation-ID": "corr-7"})
        assert recorder.closed.wait(5)
        own = httpx.get(f"{url}/own", headers={"X-Correlation-ID": "incoming"})
    assert response.text == "body"
    assert response.headers["x-correlation-id"] == "corr-7"
    assert "x-request-id" not in response.headers
    assert recorder.seen[:3] == [("call", "corr-7"), ("iterate", "corr-7"), ("close", "corr-7")]
    assert own.headers.get_list("x-correlation-id") == ["set-by-app"]


def test_a_list_body_is_given_to_the_server_as_it_is() -> None:
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen.append(request_id.get_store())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ready"]

    with waitress_server(RequestContextMiddleware(app)) as url:
        response = httpx.get(f"{url}/", headers={"X-Request-ID": "listed"})
    assert response.text == "ready"
    assert response.headers["x-request-id"] == "listed"
    # waitress sizes a one-item list itself: the list reached it unwrapped.
    assert response.headers["content-length"] == "5"
    assert seen == ["listed"]


def test_the_first_of_repeated_request_id_headers_counts(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # waitress, like every WSGI server (PEP 3333 has one environ key per
    # header), joins repeated headers as "first, second".
    with caplog.at_level(logging.WARNING, logger="async_hooks.integrations"):
        response = httpx.get(
            f"{base_url}/", headers=[("X-Request-ID", "first-id"), ("X-Request-ID", "second-id")]
        )
    assert response.json()["seen"] == "first-id"
    assert response.headers["x-request-id"] == "first-id"
    assert not [r for r in caplog.records if r.name == "async_hooks.integrations"]
