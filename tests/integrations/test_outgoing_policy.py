"""Outgoing context only where it belongs: the allow-list of every HTTP client.

Two real servers on the loopback interface stand for two hosts: the one
called as ``127.0.0.1`` is "ours", the one called as ``localhost`` a third
party. Each test checks what reached the server (its echo of the headers),
redirects from one to the other included, for httpx (sync and async),
requests and aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
import requests

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import InvalidArgTypeError, InvalidArgValueError
from async_hooks.integrations.aiohttp import context_trace_config
from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.outgoing import (
    OutgoingPolicy,
    add_outgoing_headers,
    get_outgoing_policy,
    outgoing_headers,
    set_outgoing_policy,
)
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.requests import ContextAdapter, instrument_requests
from async_hooks.propagation import JSON

from ._echo_server import echo_server

user = AsyncLocalStorage[str](name="policy_user", crosses=Crossing.REMOTE, serializer=JSON)

Headers = dict[str, list[str]]
Send = Callable[[str, OutgoingPolicy | None], Awaitable[Headers]]
RunAsync = Callable[[Callable[[], Awaitable[Any]]], Any]
OURS_ONLY = OutgoingPolicy(allowed_hosts=["127.0.0.1"])


async def send_with_httpx(url: str, policy: OutgoingPolicy | None) -> Headers:
    with instrument_httpx(httpx.Client(follow_redirects=True), policy=policy) as client:
        result: Headers = client.get(url).raise_for_status().json()
        return result


async def send_with_httpx_async(url: str, policy: OutgoingPolicy | None) -> Headers:
    async with instrument_httpx(httpx.AsyncClient(follow_redirects=True), policy=policy) as client:
        result: Headers = (await client.get(url)).raise_for_status().json()
        return result


async def send_with_requests(url: str, policy: OutgoingPolicy | None) -> Headers:
    with instrument_requests(requests.Session(), policy=policy) as session:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        result: Headers = response.json()
        return result


async def send_with_aiohttp(url: str, policy: OutgoingPolicy | None) -> Headers:
    trace_config = context_trace_config(policy=policy)
    async with (
        aiohttp.ClientSession(trace_configs=[trace_config]) as session,
        session.get(url) as response,
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


@pytest.fixture(scope="module")
def ours() -> Iterator[str]:
    with echo_server() as url:
        yield url


@pytest.fixture(scope="module")
def third_party() -> Iterator[str]:
    with echo_server() as url:
        yield url.replace("127.0.0.1", "localhost")


@pytest.fixture
def global_policy() -> Iterator[Callable[[OutgoingPolicy], None]]:
    previous = get_outgoing_policy()
    try:
        yield set_outgoing_policy  # type: ignore[misc]  # returns the previous one, unused here
    finally:
        set_outgoing_policy(previous)


def in_context(run_async: RunAsync, send: Send, url: str, policy: OutgoingPolicy | None) -> Headers:
    async def main() -> Headers:
        with user.with_scope("alice@example.com"), request_id.with_scope("req-1"):
            return await send(url, policy)

    result: Headers = run_async(main)
    return result


def redirect(from_url: str, to_url: str) -> str:
    return f"{from_url}/redirect?to={quote(to_url + '/echo', safe='')}"


def test_by_default_stores_go_to_no_host_and_the_request_id_everywhere(
    run_async: RunAsync, send: Send, ours: str, third_party: str
) -> None:
    assert get_outgoing_policy() == OutgoingPolicy()
    for url in (ours, third_party):
        headers = in_context(run_async, send, f"{url}/echo", None)
        assert "baggage" not in headers
        assert headers["x-request-id"] == ["req-1"]


def test_the_global_allow_list(
    run_async: RunAsync,
    send: Send,
    ours: str,
    third_party: str,
    global_policy: Callable[[OutgoingPolicy], None],
) -> None:
    global_policy(OURS_ONLY)
    assert in_context(run_async, send, f"{ours}/echo", None)["baggage"] == [
        "policy_user=%22alice@example.com%22"
    ]
    to_them = in_context(run_async, send, f"{third_party}/echo", None)
    assert "baggage" not in to_them
    assert to_them["x-request-id"] == ["req-1"]

    global_policy(OutgoingPolicy(allowed_hosts=["127.0.0.1"], request_id_everywhere=False))
    to_them = in_context(run_async, send, f"{third_party}/echo", None)
    assert "baggage" not in to_them
    assert "x-request-id" not in to_them


def test_a_redirect_to_a_host_not_allowed_carries_nothing_of_ours(
    run_async: RunAsync, send: Send, ours: str, third_party: str
) -> None:
    strict = OutgoingPolicy(allowed_hosts=["127.0.0.1"], request_id_everywhere=False)
    headers = in_context(run_async, send, redirect(ours, third_party), strict)
    assert "baggage" not in headers
    assert "x-request-id" not in headers
    # And back: a redirect from a third party to us carries everything again.
    headers = in_context(run_async, send, redirect(third_party, ours), strict)
    assert headers["baggage"] == ["policy_user=%22alice@example.com%22"]
    assert headers["x-request-id"] == ["req-1"]


def test_a_client_policy_replaces_the_global_one(
    run_async: RunAsync,
    send: Send,
    ours: str,
    third_party: str,
    global_policy: Callable[[OutgoingPolicy], None],
) -> None:
    global_policy(OutgoingPolicy(allowed_hosts=["*"]))
    nothing = OutgoingPolicy(request_id_everywhere=False)
    assert (
        in_context(run_async, send, f"{ours}/echo", nothing)
        .keys()
        .isdisjoint({"baggage", "x-request-id"})
    )
    by_predicate = OutgoingPolicy(allow=lambda url: url.startswith(third_party))
    headers = in_context(run_async, send, f"{third_party}/echo", by_predicate)
    assert headers["baggage"] == ["policy_user=%22alice@example.com%22"]


def test_the_callers_own_headers_still_follow_a_redirect() -> None:
    # What the caller set is the caller's: only what we added is taken out.
    with user.with_scope("alice"), request_id.with_scope("req-1"):
        headers = {"baggage": "vendor=1"}
        add_outgoing_headers(headers, url="http://127.0.0.1/", policy=OURS_ONLY)
        assert headers == {"baggage": "vendor=1,policy_user=%22alice%22", "X-Request-ID": "req-1"}
        strict = OutgoingPolicy(allowed_hosts=["127.0.0.1"], request_id_everywhere=False)
        add_outgoing_headers(headers, url="https://api.example.com/", policy=strict)
        assert headers == {"baggage": "vendor=1"}
        headers = {"X-Request-ID": "callers-own"}
        add_outgoing_headers(headers, url="https://api.example.com/", policy=strict)
        assert headers == {"X-Request-ID": "callers-own"}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://api.internal/x", True),
        ("https://API.Internal.:8443/x", True),
        ("http://api.internal.evil.com/", False),
        ("http://evil.com/?api.internal", False),
        ("http://api.internal@evil.com/", False),
        ("http://orders.svc.cluster.local/", True),
        ("http://a.b.svc.cluster.local:81/", True),
        ("http://svc.cluster.local/", False),
        ("http://xsvc.cluster.local/", False),
        ("http://10.0.0.7/", True),
        ("http://[::1]:8000/", True),
        ("http://[::1/", False),
        ("/relative/path", False),
        ("", False),
    ],
)
def test_host_patterns(url: str, allowed: bool) -> None:
    policy = OutgoingPolicy(
        allowed_hosts=["api.internal", "*.svc.cluster.local", "10.0.0.7", "[::1]"]
    )
    assert policy.allows(url) is allowed


def test_bad_policies_are_refused_with_the_argument_named() -> None:
    with pytest.raises(InvalidArgTypeError, match='"allowed_hosts" argument must be an iterable'):
        OutgoingPolicy(allowed_hosts="api.internal")
    with pytest.raises(InvalidArgTypeError, match=r"Allowed hosts must be str\. Received type int"):
        OutgoingPolicy(allowed_hosts=[1])  # type: ignore[list-item]
    for bad in ["https://api.internal", "api.internal:8443", "api.*.internal", "a b", ""]:
        with pytest.raises(InvalidArgValueError, match="is not a host pattern"):
            OutgoingPolicy(allowed_hosts=[bad])
    with pytest.raises(InvalidArgTypeError, match='"allow" argument must be callable'):
        OutgoingPolicy(allow="api.internal")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"request_id_everywhere" argument must be'):
        OutgoingPolicy(request_id_everywhere="no")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgTypeError, match='"policy" argument must be an OutgoingPolicy'):
        set_outgoing_policy({"allowed_hosts": ["*"]})  # type: ignore[arg-type]
    for build in (
        lambda: instrument_httpx(httpx.Client(), policy=["*"]),  # type: ignore[arg-type]
        lambda: ContextAdapter(policy=["*"]),  # type: ignore[arg-type]
        lambda: context_trace_config(policy=["*"]),  # type: ignore[arg-type]
        lambda: outgoing_headers(url="http://x/", policy=["*"]),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidArgTypeError, match='"policy" argument must be an Outgoing'):
            build()


def test_instrumenting_again_replaces_the_hook() -> None:
    client = instrument_httpx(httpx.Client(), policy=OURS_ONLY)
    instrument_httpx(client)
    [hook] = client.event_hooks["request"]
    assert hook.__name__ == "add_context_headers"
    client.close()
