"""What binding generators, emitters and greenlets to a context costs.

Run with ``scripts/bench benchmarks/bench_generators_emitters.py``
(``--quick`` for a fast look). Each helper is timed side by side with the
bare operation it replaces, alternating bare and helper samples
``--repeats`` times; the table shows the median time per operation of each,
the ratio of those medians, and the median of the per-pair differences
(robust to the drift of a machine shared with other work).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import AsyncGenerator, Callable, Generator

import gevent  # type: ignore[import-untyped]
import uvloop
from blinker import Signal
from pyee import EventEmitter

from async_hooks import AsyncLocalStorage
from async_hooks.integrations.blinker import connect_in_context
from async_hooks.integrations.gevent import spawn
from async_hooks.integrations.pyee import EventEmitterAsyncResource
from async_hooks.propagation._generators import bind_generator

request = AsyncLocalStorage[str](name="bench.request")

# A sample: seconds per operation, measured over a batch of operations.
Sampler = Callable[[], float]


def count_up(n: int) -> Generator[int, None, None]:
    yield from range(n)


async def count_up_async(n: int) -> AsyncGenerator[int, None]:
    for i in range(n):
        yield i


def iterate(make: Callable[[], Generator[int, None, None]], items: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        for _ in make():
            pass
        return (time.perf_counter() - start) / items

    return sample


def iterate_async(
    loop: asyncio.AbstractEventLoop, make: Callable[[], AsyncGenerator[int, None]], items: int
) -> Sampler:
    async def consume() -> None:
        async for _ in make():
            pass

    def sample() -> float:
        start = time.perf_counter()
        loop.run_until_complete(consume())
        return (time.perf_counter() - start) / items

    return sample


def repeat(operation: Callable[[], object], number: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        for _ in range(number):
            operation()
        return (time.perf_counter() - start) / number

    return sample


def spawn_and_join(spawner: Callable[..., gevent.Greenlet], number: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        gevent.joinall([spawner(request.get_store) for _ in range(number)])
        return (time.perf_counter() - start) / number

    return sample


def compare(label: str, bare: Sampler, helper: Sampler, repeats: int) -> str:
    bare_samples: list[float] = []
    helper_samples: list[float] = []
    for _ in range(repeats):
        bare_samples.append(bare())
        helper_samples.append(helper())
    bare_median = statistics.median(bare_samples)
    helper_median = statistics.median(helper_samples)
    overhead = statistics.median(h - b for b, h in zip(bare_samples, helper_samples, strict=True))
    return (
        f"| {label} | {bare_median * 1e6:.3f} | {helper_median * 1e6:.3f} | "
        f"{helper_median / bare_median:.2f} | {overhead * 1e6:+.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--repeats", type=int, default=None)
    options = parser.parse_args()
    # Many short samples: on a shared machine a sample that got preempted is
    # an outlier the median drops, and short samples are rarely preempted.
    repeats = options.repeats or (21 if options.quick else 601)
    items = 500
    number = 500

    request.enter_with("request-1")
    rows: list[str] = []

    rows.append(
        compare(
            "generator step: `bind_generator(gen())` vs `gen()`",
            iterate(lambda: count_up(items), items),
            iterate(lambda: bind_generator(count_up(items)), items),
            repeats,
        )
    )
    for name, factory in (("asyncio", asyncio.new_event_loop), ("uvloop", uvloop.new_event_loop)):
        loop = factory()
        try:
            rows.append(
                compare(
                    f"async generator step ({name}): bound vs bare",
                    iterate_async(loop, lambda: count_up_async(items), items),
                    iterate_async(loop, lambda: bind_generator(count_up_async(items)), items),
                    repeats,
                )
            )
        finally:
            loop.close()

    plain = EventEmitter()
    scoped = EventEmitterAsyncResource("Bench")
    for emitter in (plain, scoped):
        emitter.on("event", request.get_store)
    rows.append(
        compare(
            "pyee emit, one listener: EventEmitterAsyncResource vs EventEmitter",
            repeat(lambda: plain.emit("event"), number),
            repeat(lambda: scoped.emit("event"), number),
            repeats,
        )
    )

    bare_signal = Signal()
    bound_signal = Signal()
    bare_signal.connect(request.get_store, weak=False)
    connect_in_context(bound_signal, request.get_store, context="connect")
    rows.append(
        compare(
            "blinker send, one receiver: `connect_in_context` vs `connect`",
            repeat(lambda: bare_signal.send(None), number),
            repeat(lambda: bound_signal.send(None), number),
            repeats,
        )
    )

    rows.append(
        compare(
            "gevent spawn + join: `spawn` vs `gevent.spawn`",
            spawn_and_join(gevent.spawn, number // 4),
            spawn_and_join(spawn, number // 4),
            repeats,
        )
    )

    print(
        f"CPython {platform.python_version()}, {repeats} alternating samples per row, "
        f"{items} generator items / {number} operations per sample\n"
    )
    print(
        "| operation | bare, median (us) | helper, median (us) | ratio of medians "
        "| overhead, median of pairs (us) |\n|---|---:|---:|---:|---:|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
