"""What the Django middleware costs: CPU time per request, next to bare Django.

Run with ``python benchmarks/bench_django.py`` (``--quick`` for a fast look),
in a venv with the ``django`` extra. Django's own handlers are called in
process, as a server would call them, without a server or a network, so
that the figure is Django's work and the middleware's, nothing else:

* WSGI: ``WSGIHandler`` with a fresh environ per request, the body iterated
  and ``close()`` called (which sends ``request_finished``), a sync view;
* ASGI: ``ASGIHandler`` on the stdlib event loop with a fresh scope per
  request, an async view.

Each mode has two handlers built from the same settings but for
``MIDDLEWARE``: empty ("bare Django") or ``[RequestContextMiddleware]``. Each
sample is the CPU time (``time.process_time``: every thread of the process,
so also asgiref's, and not the time another process takes the core away)
of a batch of requests; the two handlers alternate sample by sample, the
first of each pair rotating. The table gives the median CPU time per
request and the median of the per-pair ratios, with its interquartile range.
The requests carry no ``X-Request-ID``: the middleware generates one, the
common case; ``--profile`` prints where the middleware's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import platform
import pstats
import statistics
import time
from typing import Any

import django  # type: ignore[import-untyped]  # Django ships no types
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponse  # type: ignore[import-untyped]
from django.test import override_settings  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

import async_hooks.lowlevel
from async_hooks.integrations.request_id import new_request_id

# Each variant's MIDDLEWARE setting.
VARIANTS = {
    "bare Django": [],
    "header-only middleware": [f"{__name__}.HeaderOnlyMiddleware"],
    "RequestContextMiddleware": ["async_hooks.integrations.django.RequestContextMiddleware"],
}


class HeaderOnlyMiddleware:
    """Sets a fresh id in ``X-Request-ID`` and nothing else, through Django's header API.

    What any middleware that returns a request id pays (a layer of Django's
    middleware chain, ``has_header``, setting one header), without a request
    context: the part of ours that no request-id middleware can avoid.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self._respond_async(request)
        return self._with_header(self.get_response(request))

    async def _respond_async(self, request: Any) -> Any:
        return self._with_header(await self.get_response(request))

    @staticmethod
    def _with_header(response: Any) -> Any:
        if not response.has_header("X-Request-ID"):
            response["X-Request-ID"] = new_request_id()
        return response


def sync_view(request: Any) -> Any:
    return HttpResponse(b"ok")


async def async_view(request: Any) -> Any:
    return HttpResponse(b"ok")


urlpatterns = [path("sync", sync_view), path("async", async_view)]


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        # This script is its own URLconf (urlpatterns above).
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()


def handlers(kind: str) -> dict[str, Any]:
    """The two handlers of one mode; the middleware chain is built when they are."""
    from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]
    from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]

    handler_class = WSGIHandler if kind == "wsgi" else ASGIHandler
    built = {}
    for variant, middleware in VARIANTS.items():
        with override_settings(MIDDLEWARE=middleware):
            built[variant] = handler_class()
    return built


# -- WSGI ----------------------------------------------------------------------


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_batch(handler: Any, requests: int) -> float:
    """CPU seconds per request for ``handler``, called as a WSGI server would."""
    start = time.process_time()
    for _ in itertools.repeat(None, requests):
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/sync",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
        }
        response = handler(environ, _start_response)
        for _chunk in response:
            pass
        response.close()
    return (time.process_time() - start) / requests


# -- ASGI ----------------------------------------------------------------------

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/async",
    "raw_path": b"/async",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


def one_request_receive(loop: asyncio.AbstractEventLoop) -> Any:
    """The ``receive`` of one request: its empty body, then a wait that never ends.

    Django listens for a disconnect while the view runs, and cancels that
    wait once the response is out.
    """
    body_sent = False
    never = loop.create_future()

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never
        raise AssertionError("unreachable")

    return receive


async def asgi_batch(handler: Any, requests: int) -> float:
    """CPU seconds per request for ``handler``, called as an ASGI server would."""
    loop = asyncio.get_running_loop()

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.process_time()
    for _ in itertools.repeat(None, requests):
        scope = {**SCOPE, "headers": list(SCOPE["headers"])}
        await handler(scope, one_request_receive(loop), send)
    return (time.process_time() - start) / requests


# -- measuring and reporting ---------------------------------------------------


def measure(kind: str, rounds: int, requests: int) -> dict[str, list[float]]:
    built = handlers(kind)
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    runner = asyncio.Runner() if kind == "asgi" else None
    try:

        def batch(handler: Any, count: int) -> float:
            if runner is None:
                return wsgi_batch(handler, count)
            return runner.run(asgi_batch(handler, count))

        for variant in VARIANTS:  # warm-up: imports, URL resolver caches, the id batch
            batch(built[variant], requests)
        names = list(VARIANTS)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for variant in names[shift:] + names[:shift]:
                samples[variant].append(batch(built[variant], requests))
    finally:
        if runner is not None:
            runner.close()
    return samples


def report(kind: str, samples: dict[str, list[float]]) -> None:
    bare = samples["bare Django"]
    for variant, own in samples.items():
        median = statistics.median(own) * 1e6
        if variant == "bare Django":
            print(f"| {kind.upper()} | {variant} | {median:.1f} µs | - | - |")
            continue
        ratios = [mine / base for mine, base in zip(own, bare, strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        added = statistics.median(m - b for m, b in zip(own, bare, strict=True)) * 1e6
        print(
            f"| {kind.upper()} | {variant} | {median:.1f} µs | {added:+.2f} µs | "
            f"{statistics.median(ratios):.3f} ({low:.3f}-{high:.3f}) |"
        )


def profile(kind: str, requests: int, repeats: int = 5) -> None:
    """Where the middleware's time goes: the functions a request calls only with it.

    Both handlers are profiled ``repeats`` times in alternation; for each
    function the smallest own time is kept (the least disturbed). Only the
    functions whose number of calls per request differs are listed: the
    rest of Django runs the same with or without the middleware. cProfile's
    own cost inflates every figure, small functions most: read the rows
    for their order and their call counts.
    """
    built = handlers(kind)
    requests = requests if kind == "wsgi" else max(requests // 10, 20)
    best: dict[str, dict[tuple[str, int, str], tuple[int, float]]] = {}
    for _ in range(repeats):
        for variant in ("bare Django", "RequestContextMiddleware"):
            profiler = cProfile.Profile()
            if kind == "wsgi":
                wsgi_batch(built[variant], requests)  # warm-up
                profiler.enable()
                wsgi_batch(built[variant], requests)
                profiler.disable()
            else:
                with asyncio.Runner() as runner:
                    runner.run(asgi_batch(built[variant], requests))
                    profiler.enable()
                    runner.run(asgi_batch(built[variant], requests))
                    profiler.disable()
            stats: Any = pstats.Stats(profiler)
            kept = best.setdefault(variant, {})
            # (file, line, function) -> (primitive calls, own time)
            for key, row in stats.stats.items():
                if key not in kept or row[2] < kept[key][1]:
                    kept[key] = (row[0], row[2])
    bare, ours = best["bare Django"], best["RequestContextMiddleware"]
    added = []
    for key, (calls, own) in ours.items():
        bare_calls, bare_own = bare.get(key, (0, 0.0))
        if calls != bare_calls:
            added.append(((own - bare_own) / requests, (calls - bare_calls) / requests, key))
    added.sort(reverse=True)
    total = sum(row[0] for row in added)
    print(f"{kind.upper()}: {total * 1e6:.2f} µs per request (profiled) in the functions below")
    print("| function | own time added per request | calls added per request |")
    print("|---|---:|---:|")
    for seconds, calls_added, (filename, line, function) in added:
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        where = where.split("/lib/python3.")[-1] if "/lib/python3." in where else where
        print(f"| `{where}:{line} {function}` | {seconds * 1e6:.2f} µs | {calls_added:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few, short samples")
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--requests", type=int, default=500, help="per WSGI sample")
    parser.add_argument("--profile", choices=["wsgi", "asgi"], help="profile instead")
    args = parser.parse_args()
    configure()
    if args.profile:
        profile(args.profile, args.requests * 4)
        return
    rounds, requests = (11, 200) if args.quick else (args.rounds, args.requests)
    print(
        f"CPython {platform.python_version()}, Django {django.get_version()}, "
        f"accelerated={async_hooks.lowlevel.accelerated()}; {rounds} rounds, "
        f"{requests} WSGI / {max(requests // 10, 20)} ASGI requests per sample"
    )
    # An ASGI request costs ten times a WSGI one (Django sends its signals
    # through threads there): samples of a tenth as many requests.
    results = {
        "wsgi": measure("wsgi", rounds, requests),
        "asgi": measure("asgi", rounds, max(requests // 10, 20)),
    }
    print()
    print("| handler | MIDDLEWARE | CPU per request | added | ratio to bare (IQR) |")
    print("|---|---|---:|---:|---:|")
    for kind, samples in results.items():
        report(kind, samples)


if __name__ == "__main__":
    main()
