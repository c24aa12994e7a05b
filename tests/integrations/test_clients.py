"""Outgoing HTTP clients (httpx sync and async, requests, aiohttp) carry the context.

Every client talks to a real server on 127.0.0.1 that answers with the
headers it received, so each test checks what actually went on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    InvalidBaggageError,
    StoreSerializationError,
    StoreSerializationWarning,
)
from async_hooks.integrations.aiohttp import context_trace_config
from async_hooks.integrations.baggage import decode_baggage
from async_hooks.integrations.httpx import (
    add_context_headers,
    add_context_headers_async,
    instrument_httpx,
)
from async_hooks.integrations.outgoing import (
    add_outgoing_headers,
    outgoing_headers,
)
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.requests import ContextAdapter, instrument_requests
from async_hooks.propagation import JSON

from ._echo_server import echo_server

tenant = AsyncLocalStorage[str](name="clients_tenant", crosses=Crossing.REMOTE, serializer=JSON)
# on_serialize_error="warn": a value that does not serialize is left out.
preferences = AsyncLocalStorage[Any](
    name="clients_preferences",
    crosses=Crossing.ALL,
    serializer=JSON,
    on_serialize_error="warn",
)
# on_serialize_error="raise" (the default): a value that does not serialize fails the call.
strict = AsyncLocalStorage[object](name="clients_strict", crosses=Crossing.REMOTE, serializer=JSON)
# The default policy: stays in this process.
secret = AsyncLocalStorage[str](name="clients_secret")

Headers = dict[str, list[str]]
Send = Callable[..., Awaitable[Headers]]
RunAsync = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with echo_server() as url:
        yield url


# The echo server is ours: the stores may go to it.
pytestmark = pytest.mark.usefixtures("loopback_allowed")


# One sender per client library. The sync clients block the loop while they
# wait, which is harmless here: the server runs in its own thread.


async def send_with_httpx(url: str, headers: dict[str, str] | None = None) -> Headers:
    with instrument_httpx(httpx.Client(follow_redirects=True)) as client:
        response = client.get(url, headers=headers)
        response.raise_for_status()
        result: Headers = response.json()
        return result


async def send_with_httpx_async(url: str, headers: dict[str, str] | None = None) -> Headers:
    async with instrument_httpx(httpx.AsyncClient(follow_redirects=True)) as client:
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        result: Headers = response.json()
        return result


async def send_with_requests(url: str, headers: dict[str, str] | None = None) -> Headers:
    with instrument_requests(requests.Session()) as session:
        response = session.get(url, headers=headers, timeout=10)
        response.raise_for_status()
        result: Headers = response.json()
        return result


async def send_with_aiohttp(url: str, headers: dict[str, str] | None = None) -> Headers:
    async with (
        aiohttp.ClientSession(trace_configs=[context_trace_config()]) as session,
        session.get(url, headers=headers) as response,
    ):
        response.raise_for_status()
        result: Headers = await response.json()
        return result


SENDERS: dict[str, Send] = {
    "httpx": send_with_httpx,
    "httpx-async": send_with_httpx_async,
    "requests": send_with_requests,
    "aiohttp": send_with_aiohttp,
}


@pytest.fixture(params=sorted(SENDERS))
def send(request: pytest.FixtureRequest) -> Send:
    return SENDERS[request.param]


def carried_stores(headers: Headers) -> dict[str, str]:
    [baggage] = headers.get("baggage", [""])
    return decode_baggage(baggage)


def test_declared_stores_and_request_id_go_on_the_wire(
    run_async: RunAsync, send: Send, base_url: str
) -> None:
    async def main() -> Headers:
        with (
            tenant.with_scope("acme"),
            preferences.with_scope({"lang": "fr"}),
            secret.with_scope("stays here"),
            request_id.with_scope("req-42"),
        ):
            return await send(f"{base_url}/echo")

    headers = run_async(main)
    assert carried_stores(headers) == {
        "clients_tenant": '"acme"',
        "clients_preferences": '{"lang":"fr"}',
    }
    assert headers["x-request-id"] == ["req-42"]


def test_nothing_is_added_without_context(run_async: RunAsync, send: Send, base_url: str) -> None:
    async def main() -> Headers:
        with secret.with_scope("stays here"):
            return await send(f"{base_url}/echo")

    headers = run_async(main)
    assert "baggage" not in headers
    assert "x-request-id" not in headers


def test_headers_set_by_the_caller_are_kept(run_async: RunAsync, send: Send, base_url: str) -> None:
    async def main() -> Headers:
        with tenant.with_scope("acme"), request_id.with_scope("from-context"):
            return await send(
                f"{base_url}/echo",
                {"baggage": "trace_flag=1", "X-Request-ID": "from-caller"},
            )

    headers = run_async(main)
    assert headers["baggage"] == ["trace_flag=1,clients_tenant=%22acme%22"]
    assert headers["x-request-id"] == ["from-caller"]


def test_redirects_carry_the_headers_once(run_async: RunAsync, send: Send, base_url: str) -> None:
    async def main() -> Headers:
        with tenant.with_scope("acme"), request_id.with_scope("req-7"):
            return await send(f"{base_url}/redirect")

    headers = run_async(main)
    assert headers["baggage"] == ["clients_tenant=%22acme%22"]
    assert headers["x-request-id"] == ["req-7"]


def test_a_store_that_does_not_serialize_fails_the_call_and_is_named(
    run_async: RunAsync, send: Send, base_url: str
) -> None:
    async def main() -> Headers:
        with strict.with_scope(object()):
            return await send(f"{base_url}/echo")

    with pytest.raises(StoreSerializationError, match="clients_strict"):
        run_async(main)


def test_a_warn_store_that_does_not_serialize_is_left_out_with_a_warning(
    run_async: RunAsync, send: Send, base_url: str
) -> None:
    async def main() -> Headers:
        with tenant.with_scope("acme"), preferences.with_scope({"not json": {1, 2}}):
            return await send(f"{base_url}/echo")

    with pytest.warns(StoreSerializationWarning, match="clients_preferences"):
        headers = run_async(main)
    assert carried_stores(headers) == {"clients_tenant": '"acme"'}


def test_stores_too_big_for_baggage_fail_the_call_with_a_clear_error(
    run_async: RunAsync, send: Send, base_url: str
) -> None:
    async def main() -> Headers:
        with tenant.with_scope("x" * 9000):
            return await send(f"{base_url}/echo")

    with pytest.raises(InvalidBaggageError, match="W3C limit is 8192"):
        run_async(main)


@pytest.mark.parametrize("kind", ["httpx-async", "aiohttp"])
def test_concurrent_requests_each_carry_their_own_context(
    run_async: RunAsync, kind: str, base_url: str
) -> None:
    send = SENDERS[kind]

    async def one(name: str) -> Headers:
        with tenant.with_scope(name), request_id.with_scope(f"req-{name}"):
            await asyncio.sleep(0)  # let the others enter their stores first
            return await send(f"{base_url}/echo")

    async def main() -> list[Headers]:
        return await asyncio.gather(*(one(f"tenant{i}") for i in range(5)))

    for i, headers in enumerate(run_async(main)):
        assert carried_stores(headers) == {"clients_tenant": f'"tenant{i}"'}
        assert headers["x-request-id"] == [f"req-tenant{i}"]


# -- the pieces, one by one ------------------------------------------------------


def test_a_custom_request_id_header_name(run_async: RunAsync, base_url: str) -> None:
    async def main() -> list[Headers]:
        with request_id.with_scope("req-custom"):
            with instrument_httpx(httpx.Client(), request_id_header="X-Correlation-ID") as client:
                sync = client.get(f"{base_url}/echo").json()
            async with instrument_httpx(
                httpx.AsyncClient(), request_id_header="X-Correlation-ID"
            ) as async_client:
                from_async = (await async_client.get(f"{base_url}/echo")).json()
            with instrument_requests(
                requests.Session(), request_id_header="X-Correlation-ID"
            ) as session:
                from_requests = session.get(f"{base_url}/echo", timeout=10).json()
            async with (
                aiohttp.ClientSession(
                    trace_configs=[context_trace_config(request_id_header="X-Correlation-ID")]
                ) as aio_session,
                aio_session.get(f"{base_url}/echo") as response,
            ):
                from_aiohttp = await response.json()
        return [sync, from_async, from_requests, from_aiohttp]

    for headers in run_async(main):
        assert headers["x-correlation-id"] == ["req-custom"]
        assert "x-request-id" not in headers


def test_httpx_hooks_can_be_given_to_the_constructor(run_async: RunAsync, base_url: str) -> None:
    async def main() -> list[Headers]:
        with request_id.with_scope("req-hooks"):
            with httpx.Client(event_hooks={"request": [add_context_headers]}) as client:
                sync = client.get(f"{base_url}/echo").json()
            async with httpx.AsyncClient(
                event_hooks={"request": [add_context_headers_async]}
            ) as async_client:
                from_async = (await async_client.get(f"{base_url}/echo")).json()
        return [sync, from_async]

    for headers in run_async(main):
        assert headers["x-request-id"] == ["req-hooks"]


def test_instrumenting_twice_adds_one_hook() -> None:
    client = instrument_httpx(instrument_httpx(httpx.Client()))
    assert client.event_hooks["request"] == [add_context_headers]
    client.close()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(InvalidArgTypeError, match=r"httpx\.Client or httpx\.AsyncClient"):
        instrument_httpx(requests.Session())  # type: ignore[type-var]
    with pytest.raises(InvalidArgTypeError, match=r"requests\.Session"):
        instrument_requests(httpx.Client())  # type: ignore[arg-type]
    for bad_name in ["X Request Id", "", "X-Id\r\nInjected: 1"]:
        with pytest.raises(InvalidArgValueError, match="not a valid HTTP header name"):
            instrument_httpx(httpx.Client(), request_id_header=bad_name)
        with pytest.raises(InvalidArgValueError, match="not a valid HTTP header name"):
            ContextAdapter(request_id_header=bad_name)
        with pytest.raises(InvalidArgValueError, match="not a valid HTTP header name"):
            context_trace_config(request_id_header=bad_name)
        with pytest.raises(InvalidArgValueError, match="not a valid HTTP header name"):
            outgoing_headers(url="http://127.0.0.1/", request_id_header=bad_name)
    with pytest.raises(InvalidArgTypeError, match="request_id_header"):
        outgoing_headers(url="http://127.0.0.1/", request_id_header=b"X-Id")  # type: ignore[arg-type]


def test_context_adapter_keeps_http_adapter_options() -> None:
    session = instrument_requests(requests.Session(), max_retries=3)
    adapter = session.get_adapter("https://example.invalid/")
    assert isinstance(adapter, ContextAdapter)
    assert adapter.max_retries.total == 3
    session.close()


def test_outgoing_headers_for_any_other_client() -> None:
    url = "http://127.0.0.1:8000/"
    assert outgoing_headers(url=url) == {}
    with tenant.with_scope("acme"), request_id.with_scope("req-1"):
        assert outgoing_headers(url=url) == {
            "baggage": "clients_tenant=%22acme%22",
            "X-Request-ID": "req-1",
        }
        headers = {"baggage": "k=" + "v" * 8180}
        with pytest.raises(InvalidBaggageError, match="8208 bytes with the header already on"):
            add_outgoing_headers(headers, url=url)
        headers = {"baggage": ",".join(f"k{n}=v" for n in range(64))}
        with pytest.raises(InvalidBaggageError, match="65 members with the header already on"):
            add_outgoing_headers(headers, url=url)
