"""What the integrations cost: a request-id middleware under uvicorn, and the
logging filter per record.

Run with ``scripts/bench benchmarks/bench_integrations.py`` (``--quick`` for a
fast look). Three parts:

* HTTP: one trivial ASGI app served by uvicorn (uvloop, h11): bare; bare but
  returning a fresh id in an ``X-Request-ID`` header itself (what one more
  response header costs the server, whoever adds it); behind
  ``async_hooks.integrations.asgi.RequestContextMiddleware``; behind
  asgi-correlation-id's ``CorrelationIdMiddleware``; and behind
  starlette-context's ``RawContextMiddleware`` with its ``RequestIdPlugin``.
  Each middleware does the same job: take or generate a request id, make it
  readable from the app (the app puts it in the body), and return it in the
  ``X-Request-ID`` response header. Each server is its own process; the load
  comes from wrk (installed with apt-get when missing), a bounded, closed-loop
  generator in another process, against 127.0.0.1. Rounds run the servers one
  after the other in a rotating order. The table gives, per server, the
  median requests per second and the median CPU time (user + system, from
  /proc) the server process spent per request, each with the median of its
  per-round ratios to the bare app: CPU per request is the steadier measure
  on a machine shared with other work.
* In process: the same apps called directly in a loop, without server or
  network, in alternation: what each middleware itself adds per request.
* Logging: records through a handler whose formatter prints only the message,
  without filter, with ``StoreFilter`` and with asgi-correlation-id's
  ``CorrelationIdFilter`` (the same job), in alternation; the table gives the
  median time per record and what each filter adds.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib
import itertools
import logging
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.request_id import new_request_id, request_id

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

VARIANTS = [
    "bare app",
    "bare app + id header",
    "async_hooks",
    "asgi-correlation-id",
    "starlette-context",
]


# -- the servers (run in child processes) -------------------------------------


def trivial_app(read_id: Callable[[], Any], *, id_header: bool = False) -> App:
    """An ASGI app that answers 200 with the current request id as its body.

    With ``id_header``, the app also returns the id in ``X-Request-ID`` itself:
    the work of a middleware without the middleware, to tell the cost of one
    more response header (the server's, paid by every variant) from the
    middleware's own.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = str(read_id()).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        if id_header:
            headers.append((b"x-request-id", body))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def build_app(variant: str) -> Any:
    if variant == "bare app":
        return trivial_app(lambda: "-")
    if variant == "bare app + id header":
        return trivial_app(new_request_id, id_header=True)
    if variant == "async_hooks":
        return RequestContextMiddleware(trivial_app(request_id.get_store))
    if variant == "asgi-correlation-id":
        correlation = importlib.import_module("asgi_correlation_id")
        return correlation.CorrelationIdMiddleware(
            trivial_app(correlation.correlation_id.get), header_name="X-Request-ID"
        )
    if variant == "starlette-context":
        middleware = importlib.import_module("starlette_context.middleware")
        plugins = importlib.import_module("starlette_context.plugins")
        context = importlib.import_module("starlette_context").context
        return middleware.RawContextMiddleware(
            trivial_app(lambda: context["X-Request-ID"]), plugins=(plugins.RequestIdPlugin(),)
        )
    raise SystemExit(f"unknown variant {variant!r}")


def serve(variant: str) -> None:
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    config = uvicorn.Config(
        build_app(variant),
        loop="uvloop",
        # httptools is not in the benchmark venv: h11, uvicorn's pure-Python
        # parser, is what serves. A faster parser makes middleware costs
        # relatively larger; the ratios are for this setup.
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[listener])


# -- the HTTP benchmark ---------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        print("wrk is missing: installing Debian's package with apt-get", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed for the HTTP benchmark and could not be installed")
    return found


class Server:
    """One variant's uvicorn process."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", variant], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                self.check_request_id()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def check_request_id(self) -> None:
        """The middleware does the job: the body and the header carry one id."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read().decode()
            header = response.getheader("x-request-id")
        finally:
            connection.close()
        if self.variant == "bare app":
            assert (body, header) == ("-", None), (body, header)
        else:
            assert header is not None, self.variant
            assert body == header, (self.variant, body, header)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux /proc)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            # Fields after the command name, which is in parentheses.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Run:
    """One wrk run against one server: its throughput and the server's CPU per request."""

    def __init__(self, requests_per_second: float, cpu_per_request: float) -> None:
        self.requests_per_second = requests_per_second
        self.cpu_per_request = cpu_per_request


def run_wrk(wrk: str, server: Server, seconds: int, connections: int) -> Run:
    cpu_before = server.cpu_seconds()
    result = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{server.port}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = server.cpu_seconds() - cpu_before
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    total = re.search(r"([0-9]+) requests in", result.stdout)
    if (
        rate is None
        or total is None
        or "Non-2xx" in result.stdout
        or "Socket errors" in result.stdout
    ):
        raise SystemExit(f"wrk run failed:\n{result.stdout}")
    return Run(float(rate.group(1)), cpu / int(total.group(1)))


def bench_http(rounds: int, seconds: int, connections: int) -> dict[str, list[Run]]:
    wrk = ensure_wrk()
    servers = [Server(variant) for variant in VARIANTS]
    results: dict[str, list[Run]] = {variant: [] for variant in VARIANTS}
    try:
        for server in servers:  # warm-up, not recorded
            run_wrk(wrk, server, 1, connections)
        for round_number in range(rounds):
            # Rotate the order so that no variant always runs first or last.
            shift = round_number % len(servers)
            for server in servers[shift:] + servers[:shift]:
                results[server.variant].append(run_wrk(wrk, server, seconds, connections))
            print(f"  round {round_number + 1}/{rounds} done", flush=True)
    finally:
        for server in servers:
            server.stop()
    return results


# -- the in-process benchmark ---------------------------------------------------------


SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
}


async def drive(app: App, requests: int) -> float:
    """Seconds per request for ``app`` called directly, without a server."""

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    start = time.perf_counter()
    for _ in itertools.repeat(None, requests):
        # A fresh scope per request, as a server gives: some middlewares edit it.
        scope = {**SCOPE, "headers": list(SCOPE["headers"])}
        await app(scope, receive, send)
    return (time.perf_counter() - start) / requests


def bench_in_process(repeats: int, requests: int) -> dict[str, list[float]]:
    import uvloop

    apps = {variant: build_app(variant) for variant in VARIANTS}
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}

    async def main() -> None:
        for _ in range(repeats):
            for variant, app in apps.items():
                timings[variant].append(await drive(app, requests))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    return timings


# -- the logging benchmark -------------------------------------------------------


def make_logger(name: str, log_filter: logging.Filter | None, sink: Any) -> logging.Logger:
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(message)s"))
    if log_filter is not None:
        handler.addFilter(log_filter)
    logger = logging.Logger(name)
    logger.addHandler(handler)
    return logger


def bench_logging(repeats: int, records: int) -> dict[str, list[float]]:
    correlation = importlib.import_module("asgi_correlation_id")
    with open(os.devnull, "w") as sink:
        loggers = {
            "no filter": make_logger("bare", None, sink),
            "StoreFilter": make_logger("ours", StoreFilter(), sink),
            "CorrelationIdFilter": make_logger("peer", correlation.CorrelationIdFilter(), sink),
        }
        timings: dict[str, list[float]] = {name: [] for name in loggers}
        correlation.correlation_id.set("4bf92f3577b34da6a3ce929d0e0e4736")
        with request_id.with_scope("4bf92f3577b34da6a3ce929d0e0e4736"):
            for _ in range(repeats):
                for name, logger in loggers.items():
                    info = logger.info
                    start = time.perf_counter()
                    for _ in itertools.repeat(None, records):
                        info("handled")
                    timings[name].append((time.perf_counter() - start) / records)
    return timings


# -- report ------------------------------------------------------------------------------


def paired_ratios(samples: list[float], baseline: list[float]) -> list[float]:
    """Each round's ratio to the baseline of the same round: drift cancels out."""
    return [sample / base for sample, base in zip(samples, baseline, strict=True)]


def quartiles(values: list[float]) -> tuple[float, float]:
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


def report_http(results: dict[str, list[Run]]) -> None:
    bare = results["bare app"]
    bare_rps = [run.requests_per_second for run in bare]
    bare_cpu = [run.cpu_per_request for run in bare]
    print(
        "| server | median requests/s | median ratio to bare (IQR) "
        "| median server CPU per request | median ratio to bare (IQR) | CPU cost |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for variant in VARIANTS:
        rps = [run.requests_per_second for run in results[variant]]
        cpu = [run.cpu_per_request for run in results[variant]]
        rps_ratios = paired_ratios(rps, bare_rps)
        cpu_ratios = paired_ratios(cpu, bare_cpu)
        rps_low, rps_high = quartiles(rps_ratios)
        cpu_low, cpu_high = quartiles(cpu_ratios)
        cpu_ratio = statistics.median(cpu_ratios)
        print(
            f"| {variant} | {statistics.median(rps):,.0f} "
            f"| {statistics.median(rps_ratios):.3f} ({rps_low:.3f}-{rps_high:.3f}) "
            f"| {statistics.median(cpu) * 1e6:.1f} µs "
            f"| {cpu_ratio:.3f} ({cpu_low:.3f}-{cpu_high:.3f}) | {cpu_ratio - 1:+.1%} |"
        )


def report_logging(timings: dict[str, list[float]]) -> None:
    bare = timings["no filter"]
    print("| handler | median per record | median added by the filter (IQR) | median ratio |")
    print("|---|---:|---:|---:|")
    for name, samples in timings.items():
        added = [sample - base for sample, base in zip(samples, bare, strict=True)]
        low, high = quartiles(added)
        added_text = (
            ""
            if name == "no filter"
            else f"{statistics.median(added) * 1e9:,.0f} ns ({low * 1e9:,.0f} to {high * 1e9:,.0f})"
        )
        ratio = statistics.median(paired_ratios(samples, bare))
        print(
            f"| {name} | {statistics.median(samples) * 1e6:.2f} µs | {added_text} | {ratio:.3f} |"
        )


def report_in_process(timings: dict[str, list[float]]) -> None:
    bare = timings["bare app"]
    print("| app called directly | median per request | median added by the middleware (IQR) |")
    print("|---|---:|---:|")
    for variant, samples in timings.items():
        added = [sample - base for sample, base in zip(samples, bare, strict=True)]
        low, high = quartiles(added)
        added_text = (
            ""
            if variant == "bare app"
            else f"{statistics.median(added) * 1e6:.2f} µs ({low * 1e6:.2f} to {high * 1e6:.2f})"
        )
        print(f"| {variant} | {statistics.median(samples) * 1e6:.2f} µs | {added_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="few, short rounds")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    rounds, seconds = (3, 1) if args.quick else (args.rounds, args.seconds)
    print(
        f"CPython {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; wrk -t1 -c{args.connections}, {rounds} rounds of "
        f"{seconds:g} s per server"
    )
    http_results = bench_http(rounds, seconds, args.connections)
    in_process = bench_in_process(repeats=11 if args.quick else 201, requests=1_000)
    log_timings = bench_logging(repeats=11 if args.quick else 301, records=2_000)
    print()
    report_http(http_results)
    print()
    report_in_process(in_process)
    print()
    report_logging(log_timings)


if __name__ == "__main__":
    main()
