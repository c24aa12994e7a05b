"""Real servers for the middleware tests, on 127.0.0.1 and an ephemeral port.

Each helper is a context manager that starts the server on its own thread,
yields its base URL once it accepts connections, and stops it on exit, also
when the test failed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]

STARTUP_TIMEOUT = 10.0


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
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
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
