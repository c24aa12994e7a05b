"""The tools on a small HTTP service: a trace, a stall and a leaked timer, each with its request.

A real HTTP server on 127.0.0.1 (an ephemeral port) gives every request an
id in an ``AsyncLocalStorage`` named ``request``; a client sends concurrent
requests. Two handlers misbehave on purpose:

* ``/report`` renders its report with blocking code, which stalls the event
  loop for about 150 ms (``--stalls`` names the request and the line);
* ``/subscribe`` arms a reminder timer and forgets it; when the server shuts
  down, the timer is dropped unrun (``--why-running`` names the line that
  armed it, its request, and the chain of tasks back to the server).

Run it under the tools (``bash scripts/demo`` does exactly this, after Node's example)::

    python -m async_hooks run --trace demo.trace.json --html demo.html \\
        --why-running --stalls 100 --store request examples/tools_demo.py

It exits by itself, with status 0 once every response came back.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage[str](name="request")
_ids = itertools.count(1)


def render_report() -> bytes:
    # Deliberately blocking: CPU-bound work on the event loop's thread.
    time.sleep(0.15)
    return b"report ready"


def send_reminder() -> None:
    print(f"reminder for {request.get_store()}")


async def handle_path(path: str) -> bytes:
    await asyncio.sleep(0.01)  # a database call, say
    if path == "/report":
        return render_report()
    if path == "/subscribe":
        # The leak: a reminder an hour from now, never cancelled.
        asyncio.get_running_loop().call_later(3600, send_reminder)
        return b"subscribed"
    return b"hello"


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request_line = (await reader.readline()).decode("latin-1").split()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # headers
    path = request_line[1] if len(request_line) > 1 else "/"
    with request.with_scope(f"req-{next(_ids)} {path}"):
        body = await handle_path(path)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def fetch(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return response.split(b"\r\n\r\n", 1)[1]


async def main(rounds: int) -> None:
    server = await asyncio.start_server(serve_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    paths = ["/", "/report", "/", "/subscribe", "/"]
    async with server:
        for _ in range(rounds):
            bodies = await asyncio.gather(*(fetch(port, path) for path in paths))
            print(" | ".join(body.decode() for body in bodies), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of concurrent requests")
    asyncio.run(main(parser.parse_args().rounds))
