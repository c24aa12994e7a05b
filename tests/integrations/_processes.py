"""Real servers for the integration tests: Redis, and Celery, RQ and Dramatiq workers on 127.0.0.1.

Each helper starts a subprocess, waits until it answers, and gives back
what the tests need to talk to it; ``stop`` ends it (politely first).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

TESTS_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port that was free a moment ago (the server binding it may still lose a race)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 10) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away redis-server on an ephemeral port; returns it and its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed (scripts/test installs it)")
    for _attempt in range(3):
        port = free_port()
        process = subprocess.Popen(
            [
                *(executable, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=port)

        def answers(
            client: redis.Redis = client, process: subprocess.Popen[bytes] = process
        ) -> bool:
            if process.poll() is not None:
                return True  # it died (port taken?): stop waiting, try another port
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=10, what="redis-server")
        client.close()
        if process.poll() is None:
            return process, f"redis://127.0.0.1:{port}/0"
    pytest.fail("redis-server did not start on any of three ports")


def worker_env(broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker: the broker's URL, tests/ importable, ``extra`` on top."""
    return {
        **os.environ,
        "ASYNC_HOOKS_TEST_BROKER": broker_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        **extra,
    }


def start_worker(
    command: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """``command`` run from tests/, its stdout and stderr both in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, cwd=TESTS_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def start_celery_worker(
    app_module: str, broker_url: str, log_path: Path, *, pool: str = "solo"
) -> subprocess.Popen[bytes]:
    """``celery worker`` for ``app_module`` (importable from tests/), one process, one slot."""
    command = [sys.executable, "-m", "celery", "-A", app_module, "worker"]
    command += ["--pool", pool, "--concurrency", "1", "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return start_worker(command, worker_env(broker_url), log_path)
