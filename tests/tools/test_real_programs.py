"""The tools on real programs: a uvicorn service and a Celery worker, run under ``run``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ..integrations._processes import free_port
from ._programs import TIMEOUT, environment, load_trace, write

SERVICE = """
import asyncio, time
from async_hooks.integrations.asgi import RequestContextMiddleware

def remind():
    print("never")

async def endpoints(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    await asyncio.sleep(0.001)
    if path == "/slow":
        time.sleep(0.2)  # blocks the loop
    if path == "/leak":
        asyncio.get_running_loop().call_later(3600, remind)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": path.encode()})

app = RequestContextMiddleware(endpoints)
"""


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the server never listened")


def _get(port: int, path: str, request_id: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Request-ID": request_id}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()  # type: ignore[no-any-return]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_uvicorn_service(tmp_path: Path, loop: str) -> None:
    write(tmp_path / "service.py", SERVICE)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "async_hooks", "run", "--trace", "t.json", "--html", "r.html",
         "--why-running", "--stalls", "100", "--store", "async_hooks.request_id",
         "-m", "uvicorn", "service:app", "--host", "127.0.0.1", "--port", str(port),
         "--loop", loop, "--log-level", "warning"],
        cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        assert _get(port, "/", "plain-1") == b"/"
        assert _get(port, "/slow", "slow-1") == b"/slow"
        assert _get(port, "/leak", "leak-1") == b"/leak"
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    (stall,) = [
        text.split("async-hooks:", 1)[0]
        for text in err.split("async-hooks: stall:")[1:]
        if "time.sleep(0.2)" in text
    ]
    assert "async_hooks.request_id='slow-1'" in stall
    assert "time.sleep(0.2)" in stall
    left = err.split("async-hooks: at exit", 1)[1]
    timer = left.split("* TimerHandle", 1)[1].split("\n* ", 1)[0]
    assert "created at service.py:20 endpoints" in timer
    assert "async_hooks.request_id='leak-1'" in timer
    events = load_trace(tmp_path / "t.json")
    steps = [event for event in events if event["ph"] == "X" and event.get("cat") == "step"]
    assert {"'plain-1'", "'slow-1'", "'leak-1'"} <= {
        event["args"].get("async_hooks.request_id") for event in steps
    }
    assert (tmp_path / "r.html").stat().st_size > 0


WORKER = """
import asyncio, os
from celery import Celery
from async_hooks import AsyncLocalStorage

job = AsyncLocalStorage(name="job")
app = Celery("jobs", broker=os.environ["BROKER"], backend=os.environ["BROKER"])

@app.task
def double(n):
    async def work():
        await asyncio.sleep(0.001)
        return n * 2
    return job.run(f"double-{n}", asyncio.run, work())
"""


def test_a_celery_worker(tmp_path: Path, broker_url: str) -> None:
    from celery import Celery  # type: ignore[import-untyped]  # celery ships no types

    write(tmp_path / "jobs.py", WORKER)
    env = {**environment(), "BROKER": broker_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "async_hooks", "run", "--trace", "t.json", "--why-running",
         "--store", "job", "-m", "celery", "-A", "jobs", "worker", "--pool", "solo",
         "--concurrency", "1", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = Celery("jobs", broker=broker_url, backend=broker_url)
    try:
        results = [client.send_task("jobs.double", args=(n,)) for n in (1, 2, 3)]
        assert [result.get(timeout=30) for result in results] == [2, 4, 6]
    finally:
        process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        _, err = process.communicate(timeout=TIMEOUT)
        client.close()
    assert process.returncode == 0, err
    assert "async-hooks: at exit" in err
    events = load_trace(tmp_path / "t.json")
    jobs = {
        event["args"].get("job")
        for event in events
        if event["ph"] == "X" and event.get("cat") == "step"
    }
    assert {"'double-1'", "'double-2'", "'double-3'"} <= jobs
