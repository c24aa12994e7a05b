"""Real servers for the middleware tests, on 127.0.0.1 and an ephemeral port.

Each helper is a context manager that starts the server on its own thread,
yields its base URL once it accepts connections, and stops it on exit, also
when the test failed.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
import uvloop
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]

STARTUP_TIMEOUT = 30.0


@contextmanager
def uvicorn_server(app: Any, *, loop: str) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on ``loop`` ("asyncio" or "uvloop")."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, loop=loop, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started, "uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@contextmanager
def waitress_server(app: Any, *, threads: int = 4) -> Iterator[str]:
    """Serve the WSGI ``app`` with waitress and ``threads`` worker threads."""
    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Closing every channel from the server's own loop ends the loop.
        try:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:
            # The trigger's pipe is closed already (seen once under load): the
            # loop is closing its channels itself; close what is left here.
            wasyncore.close_all(server._map)
        thread.join(STARTUP_TIMEOUT)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive(), "waitress did not stop"


def _wait_until(condition: Any, message: str) -> None:
    done = threading.Event()
    for _ in range(int(STARTUP_TIMEOUT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(message)


@contextmanager
def aiohttp_server(app: Any, *, loop: str) -> Iterator[str]:
    """Serve the aiohttp ``app`` on its own thread and event loop ("asyncio" or "uvloop")."""
    from aiohttp import web

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    started = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            state["url"] = f"http://{host}:{port}"
            state["stop"] = stop = asyncio.Event()
            state["loop"] = asyncio.get_running_loop()
            started.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    def run() -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert started.wait(STARTUP_TIMEOUT), "aiohttp did not start"
        yield state["url"]
    finally:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(STARTUP_TIMEOUT)
        assert not thread.is_alive(), "aiohttp did not stop"
