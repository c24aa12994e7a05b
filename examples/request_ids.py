"""Node's AsyncLocalStorage example, in Python: an id for every HTTP request.

Node's documentation opens with a server that gives each request an id with
``asyncLocalStorage.run`` and logs ``start`` and, after more asynchronous
work, ``finish``; two concurrent requests print::

    0: start
    1: start
    0: finish
    1: finish

This script does the same with asyncio: a real HTTP server on 127.0.0.1 (an
ephemeral port), a client sending concurrent requests, and a log helper
that finds the request id without being passed it. The work between
``start`` and ``finish`` goes through a child task, a timer and a
``call_soon`` callback (Node's ``setImmediate``): the id follows it all.
It exits by itself, with status 1 if any line carried the wrong id.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys

from async_hooks import AsyncLocalStorage

request_id = AsyncLocalStorage[int](name="request_id")
ids = itertools.count()
log_lines: list[str] = []


def log_with_id(message: str) -> None:
    current = request_id.get_store()
    line = f"{current if current is not None else '-'}: {message}"
    log_lines.append(line)
    print(line, flush=True)


def _current_id() -> int:
    current = request_id.get_store()
    return -1 if current is None else current


async def other_async_work() -> int:
    # A child task and a timer: both inherit the request's store.
    loop = asyncio.get_running_loop()
    timer_fired: asyncio.Future[int] = loop.create_future()
    loop.call_later(0.02, lambda: timer_fired.set_result(_current_id()))
    return await timer_fired


async def handle_request(writer: asyncio.StreamWriter) -> None:
    log_with_id("start")
    seen_by_timer = await asyncio.create_task(other_async_work())
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def finish() -> None:  # runs from the loop, like Node's setImmediate callback
        log_with_id("finish")
        body = f"request {request_id.get_store()} (timer saw {seen_by_timer})".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        finished.set_result(None)

    loop.call_soon(finish)
    await finished


async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        await request_id.run(next(ids), handle_request, writer)
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def http_get(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return response.split(b"\r\n\r\n", 1)[1].decode()


def lines_are_consistent(requests: int) -> bool:
    """Each request logged start then finish under its own id, and they interleaved."""
    expected = {f"{n}: {what}" for n in range(requests) for what in ("start", "finish")}
    starts = [i for i, line in enumerate(log_lines) if line.endswith(": start")]
    finishes = [i for i, line in enumerate(log_lines) if line.endswith(": finish")]
    concurrent = requests < 2 or max(starts) < min(finishes)
    return set(log_lines) == expected and len(log_lines) == 2 * requests and concurrent


async def main(requests: int) -> int:
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        bodies = await asyncio.gather(*(http_get(port) for _ in range(requests)))
    for body in bodies:
        print(f"client received: {body}")
    if lines_are_consistent(requests) and all("timer saw" in body for body in bodies):
        print(f"ok: each of {requests} concurrent requests logged under its own id")
        return 0
    print("error: a log line carried another request's id", file=sys.stderr)
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2, help="concurrent requests (2)")
    sys.exit(asyncio.run(main(parser.parse_args().requests)))
