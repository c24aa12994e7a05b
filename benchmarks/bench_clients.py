"""What carrying context costs an outgoing call: HTTP clients and Celery tasks.

Run with ``scripts/bench benchmarks/bench_clients.py`` (``--quick`` for a fast
look). Three parts, each timing a baseline and the instrumented variant side
by side, in alternating blocks, and reporting medians and their ratio:

* headers: ``add_outgoing_headers`` on an ``httpx.Headers``, alone, with a
  request id and two declared stores in the context (its cost per request);
* HTTP: one GET over a kept-alive connection to a minimal HTTP/1.1 server in
  another process on 127.0.0.1, with a plain and an instrumented client, for
  httpx (sync and async), requests and aiohttp, with the same context;
* Celery: ``task.apply()`` (the task runs in this process, no broker) of a
  plain ``celery.Task`` and of a ``ContextTask``: the per-task cost of
  isolating the run and entering the stores.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
import requests
from celery import Celery, Task  # type: ignore[import-untyped]  # celery ships no types

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.aiohttp import context_trace_config
from async_hooks.integrations.celery import ContextTask
from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.outgoing import (
    OutgoingPolicy,
    add_outgoing_headers,
    set_outgoing_policy,
)
from async_hooks.integrations.request_id import request_id
from async_hooks.integrations.requests import instrument_requests
from async_hooks.propagation import JSON

tenant = AsyncLocalStorage[str](name="bench_tenant", crosses=Crossing.REMOTE, serializer=JSON)
user = AsyncLocalStorage[dict[str, Any]](name="bench_user", crosses=Crossing.ALL, serializer=JSON)

# A keep-alive HTTP/1.1 server that answers every request with an empty 200,
# run as its own process so that it does not share the GIL with the clients.
SERVER_CODE = """
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n"
async def handle(reader, writer):
    try:
        while await reader.readuntil(b"\\r\\n\\r\\n"):
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


@contextmanager
def http_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait()


@contextmanager
def in_context() -> Iterator[None]:
    with (
        request_id.with_scope("4bf92f3577b34da6a3ce929d0e0e4736"),
        tenant.with_scope("acme"),
        user.with_scope({"id": 42, "roles": ["admin"]}),
    ):
        yield


def time_per_call(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


async def time_per_call_async(call: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls


def compare(
    name: str, baseline: Callable[[], float], candidate: Callable[[], float], rounds: int
) -> None:
    """Alternate baseline and candidate blocks; print medians and their ratio."""
    base_times: list[float] = []
    candidate_times: list[float] = []
    for round_number in range(rounds):
        # Alternate which one goes first, so that neither always runs warmer.
        if round_number % 2:
            candidate_times.append(candidate())
            base_times.append(baseline())
        else:
            base_times.append(baseline())
            candidate_times.append(candidate())
    report(name, base_times, candidate_times)


async def compare_async(
    name: str,
    baseline: Callable[[], Awaitable[object]],
    candidate: Callable[[], Awaitable[object]],
    rounds: int,
    calls: int,
) -> None:
    """``compare`` for coroutine calls: blocks timed on the running loop."""
    times: dict[str, list[float]] = {"base": [], "candidate": []}
    for round_number in range(rounds):
        order = [("base", baseline), ("candidate", candidate)]
        for key, call in reversed(order) if round_number % 2 else order:
            times[key].append(await time_per_call_async(call, calls))
    report(name, times["base"], times["candidate"])


def report(name: str, base_times: list[float], candidate_times: list[float]) -> None:
    base, cand = statistics.median(base_times), statistics.median(candidate_times)
    print(
        f"| {name} | {len(base_times)} | {base * 1e6:.2f} | {cand * 1e6:.2f} | "
        f"{(cand - base) * 1e6:+.2f} | {cand / base:.3f} |"
    )


def header_part(rounds: int, calls: int) -> None:
    def empty_headers() -> float:
        return time_per_call(httpx.Headers, calls)

    def with_context_headers() -> float:
        def add() -> None:
            add_outgoing_headers(httpx.Headers(), url="http://127.0.0.1/")

        with in_context():
            return time_per_call(add, calls)

    compare("add_outgoing_headers(httpx.Headers())", empty_headers, with_context_headers, rounds)


def http_part(url: str, rounds: int, calls: int) -> None:
    plain_httpx, instrumented_httpx = httpx.Client(), instrument_httpx(httpx.Client())
    plain_requests, instrumented_requests = (
        requests.Session(),
        instrument_requests(requests.Session()),
    )

    def sync_runner(client: Any) -> Callable[[], float]:
        def run() -> float:
            with in_context():
                return time_per_call(lambda: client.get(url), calls)

        return run

    compare("httpx.Client GET", sync_runner(plain_httpx), sync_runner(instrumented_httpx), rounds)
    compare(
        "requests.Session GET",
        sync_runner(plain_requests),
        sync_runner(instrumented_requests),
        rounds,
    )
    for client in (plain_httpx, instrumented_httpx, plain_requests, instrumented_requests):
        client.close()

    async def async_part() -> None:
        plain_async = httpx.AsyncClient()
        instrumented_async = instrument_httpx(httpx.AsyncClient())
        plain_aio = aiohttp.ClientSession()
        instrumented_aio = aiohttp.ClientSession(trace_configs=[context_trace_config()])

        async def aiohttp_get(session: aiohttp.ClientSession) -> None:
            async with session.get(url) as response:
                await response.read()

        with in_context():
            await compare_async(
                "httpx.AsyncClient GET",
                lambda: plain_async.get(url),
                lambda: instrumented_async.get(url),
                rounds,
                calls,
            )
            await compare_async(
                "aiohttp.ClientSession GET",
                lambda: aiohttp_get(plain_aio),
                lambda: aiohttp_get(instrumented_aio),
                rounds,
                calls,
            )
        await plain_async.aclose()
        await instrumented_async.aclose()
        await plain_aio.close()
        await instrumented_aio.close()

    asyncio.run(async_part())


def celery_part(rounds: int, calls: int) -> None:
    app = Celery("bench_clients", broker="memory://", backend="cache+memory://")

    def noop() -> None:
        pass

    plain = app.task(base=Task, name="bench.plain")(noop)
    carrying = app.task(base=ContextTask, name="bench.context")(noop)

    def runner(task: Any) -> Callable[[], float]:
        def run() -> float:
            with in_context():
                return time_per_call(task.apply, calls)

        return run

    compare("task.apply() (eager, no broker)", runner(plain), runner(carrying), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a fast look")
    quick = parser.parse_args().quick
    # Many short alternating blocks (one call each for the slow parts): a
    # burst of load from a neighbour on the shared machine spoils a few
    # samples of both sides, which the medians then ignore.
    scale = 10 if quick else 1
    # The server is on loopback: let the stores go to it, so that the whole
    # carrier is measured (by default they go to no host).
    set_outgoing_policy(OutgoingPolicy(allowed_hosts=["127.0.0.1"]))
    print(f"CPython {platform.python_version()}, {platform.machine()}\n")
    print("| what | samples | baseline µs | with context µs | added µs | ratio |")
    print("|---|---|---|---|---|---|")
    header_part(201 // scale, 500)
    with http_server() as url:
        http_part(url, 2001 // scale, 1)
    celery_part(1001 // scale, 1)


if __name__ == "__main__":
    main()
