"""Run the cross-service example end to end and show one request id in three processes.

Starts, all on 127.0.0.1: a throw-away Redis (the Celery broker), a Celery
worker, the ``inventory`` service and the ``frontend`` service (uvicorn).
Then it places one order with the frontend, which calls inventory over HTTP
and queues a Celery task; it prints every log line of the three processes
and checks that the request id the frontend gave the order is on the lines
of all three. Everything is stopped at the end, also on failure.

    python examples/cross_service/run.py

Exit status: 0 when the id (and the customer) reached all three processes,
1 when not, 2 when redis-server is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

EXAMPLES_DIR = Path(__file__).resolve().parent.parent
SERVICES = ("frontend", "inventory", "worker")
CUSTOMER = "alice"
TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def started(name: str, command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    """Run ``command`` for the block, its output going to ``log``; stop it after."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", file=sys.stderr)
            process.kill()
            process.wait()


def answers_http(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def place_order(frontend_url: str) -> str:
    """POST one order; returns the request id the frontend gave it."""
    response = httpx.post(
        f"{frontend_url}/orders/book", params={"customer_name": CUSTOMER}, timeout=10
    )
    response.raise_for_status()
    return response.headers["X-Request-ID"]


def service_lines(logs: dict[str, Path]) -> dict[str, list[str]]:
    """Each process's log lines (Celery's banner and blank lines left out)."""
    return {
        name: [line for line in path.read_text().splitlines() if line.startswith(f"{name:<9} [")]
        for name, path in logs.items()
    }


def main() -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    redis_port, inventory_port, frontend_port = free_port(), free_port(), free_port()
    inventory_url = f"http://127.0.0.1:{inventory_port}"
    frontend_url = f"http://127.0.0.1:{frontend_port}"
    python_path = [str(EXAMPLES_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(python_path),
        "CROSS_SERVICE_BROKER": f"redis://127.0.0.1:{redis_port}/0",
        "CROSS_SERVICE_INVENTORY_URL": inventory_url,
        "PYTHONUNBUFFERED": "1",
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
    # In start order: the broker first, the service users call last.
    commands = {
        "redis": [
            *(redis_server, "--port", str(redis_port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ],
        "worker": [
            *(sys.executable, "-m", "celery", "-A", "cross_service.tasks", "--quiet", "worker"),
            *("--pool", "solo", "--loglevel", "INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        "inventory": [*uvicorn, "--port", str(inventory_port), "cross_service.inventory:app"],
        "frontend": [*uvicorn, "--port", str(frontend_port), "cross_service.frontend:app"],
    }
    with tempfile.TemporaryDirectory(prefix="cross_service-") as tmp, ExitStack() as running:
        logs = {name: Path(tmp) / f"{name}.log" for name in commands}
        for name, command in commands.items():
            running.enter_context(started(name, command, env, logs[name]))
        wait_until(lambda: answers_http(f"{inventory_url}/docs"), "the inventory service")
        wait_until(lambda: answers_http(f"{frontend_url}/docs"), "the frontend service")

        request_id = place_order(frontend_url)
        print(f"request id: {request_id}")
        tag = f"[{request_id}]"
        try:
            # The task may wait in Redis until the worker is up: give it time.
            wait_until(lambda: tag in logs["worker"].read_text(), "the worker's log line")
        except TimeoutError as error:
            print(error, file=sys.stderr)
        running.close()  # stop everything, so that every log is complete
        lines = service_lines({name: logs[name] for name in SERVICES})

    for name in SERVICES:
        print(f"--- {name}")
        for line in lines[name]:
            print(line)
    print("---")
    missing = [
        name
        for name in SERVICES
        if not any(tag in line and f"customer={CUSTOMER}" in line for line in lines[name])
    ]
    if missing:
        print(f"request id {request_id} with customer={CUSTOMER} NOT found in: {missing}")
        return 1
    print(f"request id {request_id} with customer={CUSTOMER} found in: {', '.join(SERVICES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
