"""What carrying context across threads, pools and processes costs per job.

Run with ``scripts/bench benchmarks/bench_propagation.py`` (``--quick`` for a
fast look). Each helper is timed side by side with the bare call it
replaces, in alternation (A, B, A, B, ...), ``--repeats`` times; the tables
show medians per job and the difference and ratio of the medians.

* The per-job work alone, without a thread hop: what the helper adds in
  the submitting thread and around the job (capture a context, run in it).
* Whole round trips through a real pool, thread or loop, with a trivial job,
  where the goal is an overhead <= 1 microsecond or <= 10% of that job.
* Process jobs: a trivial job through a ProcessPoolExecutor, bare and
  carrying three small declared stores.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import platform
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextvars import copy_context
from typing import Any

import uvloop

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.propagation import (
    JSON,
    ContextExecutor,
    ContextThread,
    ProcessJob,
    bind_callback,
    capture_context,
    carry_stores,
    install,
    run_in_executor,
    uninstall,
)

# Three small stores of the kind a request carries, all allowed to cross processes.
request_id = AsyncLocalStorage[str](name="bench.request_id", crosses=Crossing.ALL, serializer=JSON)
tenant = AsyncLocalStorage[str](name="bench.tenant", crosses=Crossing.ALL, serializer=JSON)
user = AsyncLocalStorage[dict[str, Any]](name="bench.user", crosses=Crossing.ALL, serializer=JSON)


def enter_request_stores() -> None:
    request_id.enter_with("4bf92f3577b34da6a3ce929d0e0e4736")
    tenant.enter_with("acme")
    user.enter_with({"id": 42, "roles": ["admin"]})


def noop(*_: Any) -> None:
    return None


Sampler = Callable[[], float]


class Comparison:
    """Alternating samples of a baseline and a candidate, in seconds per job."""

    def __init__(self, base: list[float], cand: list[float]) -> None:
        self.base = statistics.median(base)
        self.cand = statistics.median(cand)
        # Each candidate sample against the baseline sample taken just
        # before it: the median of these differences shrugs off the drift of
        # a machine shared with other work better than a difference of medians.
        self.overhead = statistics.median(c - b for b, c in zip(base, cand, strict=True))


def alternate(baseline: Sampler, candidate: Sampler, repeats: int) -> Comparison:
    """``repeats`` samples of each, alternating baseline and candidate."""
    base: list[float] = []
    cand: list[float] = []
    for _ in range(repeats):
        base.append(baseline())
        cand.append(candidate())
    return Comparison(base, cand)


def per_call(fn: Callable[[], object], number: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number

    return sample


def row(label: str, result: Comparison, goal: str) -> str:
    return (
        f"| {label} | {result.base * 1e6:.3f} | {result.cand * 1e6:.3f} | "
        f"{result.cand / result.base:.2f} | {result.overhead * 1e6:+.3f} | "
        f"{result.overhead / result.base * 100:+.1f}% | {goal} |"
    )


HEADER = (
    "| per job | bare, median (us) | helper, median (us) | ratio of medians "
    "| overhead, median of pairs (us) | overhead (%) | goal |\n"
    "|---|---:|---:|---:|---:|---:|---|"
)


# -- the per-job work alone ------------------------------------------------------------


def bench_work(number: int, repeats: int) -> list[str]:
    rows = []
    pairs: list[tuple[str, Callable[[], object], Callable[[], object], str]] = [
        (
            "capture + run in pool job vs direct call",
            noop,
            lambda: capture_context(Crossing.POOLS).run(noop),
            "<= 1 us",
        ),
        (
            "same, vs `copy_context().run` (asyncio.to_thread's own)",
            lambda: copy_context().run(noop),
            lambda: capture_context(Crossing.POOLS).run(noop),
            "(info)",
        ),
        (
            "bind_callback + call vs direct call",
            lambda: noop(None),
            lambda: bind_callback(noop)(None),
            "<= 1 us",
        ),
    ]
    for label, baseline, candidate, goal in pairs:
        rows.append(
            row(
                label,
                alternate(per_call(baseline, number), per_call(candidate, number), repeats),
                goal,
            )
        )

    # One store declared crosses=Crossing.NONE: capture must reset it per job.
    secret = AsyncLocalStorage[str](name="bench.secret", crosses=Crossing.NONE)
    secret.enter_with("never crosses")
    rows.append(
        row(
            "same capture + run, one store with crosses=NONE",
            alternate(
                per_call(noop, number),
                per_call(lambda: capture_context(Crossing.POOLS).run(noop), number),
                repeats,
            ),
            "(info)",
        )
    )
    secret.disable()
    del secret

    enter_request_stores()
    rows.append(
        row(
            "process job: carry 3 stores + pickle + unpickle + run, vs pickle + run",
            alternate(
                per_call(lambda: pickle.loads(pickle.dumps(noop))(), number // 10),
                per_call(lambda: pickle.loads(pickle.dumps(carry_stores(noop)))(), number // 10),
                repeats,
            ),
            "(info)",
        )
    )
    return rows


# -- round trips through real pools, threads and loops ---------------------------------------


def pool_batch(submit: Callable[..., Future[Any]], jobs: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        wait([submit(noop) for _ in range(jobs)])
        return (time.perf_counter() - start) / jobs

    return sample


def submit_side(pool: ThreadPoolExecutor, submit: Callable[..., Future[Any]], jobs: int) -> Sampler:
    """Seconds per ``submit`` while every worker is held: no thread hop is timed."""
    workers = pool._max_workers

    def sample() -> float:
        gate = threading.Event()
        held = threading.Barrier(workers + 1)

        def hold() -> None:
            held.wait()
            gate.wait()

        blockers = [pool.submit(hold) for _ in range(workers)]
        held.wait()
        start = time.perf_counter()
        futures = [submit(noop) for _ in range(jobs)]
        elapsed = time.perf_counter() - start
        gate.set()
        wait(futures + blockers)
        return elapsed / jobs

    return sample


def map_batch(mapper: Callable[..., Any], jobs: int) -> Sampler:
    items = range(jobs)

    def sample() -> float:
        start = time.perf_counter()
        for _ in mapper(noop, items):
            pass
        return (time.perf_counter() - start) / jobs

    return sample


def thread_batch(factory: type[threading.Thread], threads: int) -> Sampler:
    def sample() -> float:
        start = time.perf_counter()
        for _ in range(threads):
            thread = factory(target=noop)
            thread.start()
            thread.join()
        return (time.perf_counter() - start) / threads

    return sample


def loop_batch(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    pool: ThreadPoolExecutor,
    jobs: int,
    helper: bool,
) -> Sampler:
    async def batch() -> float:
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        if helper:
            await asyncio.gather(*(run_in_executor(pool, noop) for _ in range(jobs)))
        else:
            await asyncio.gather(*(loop.run_in_executor(pool, noop) for _ in range(jobs)))
        return (time.perf_counter() - start) / jobs

    def sample() -> float:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(batch())

    return sample


def bench_round_trips(jobs: int, repeats: int) -> list[str]:
    rows = []
    enter_request_stores()
    with ThreadPoolExecutor(max_workers=2) as pool:
        wrapped = ContextExecutor(pool)
        goal = "<= 1 us or <= 10%"
        rows.append(
            row(
                "submit alone, workers held: ContextExecutor vs bare",
                alternate(
                    submit_side(pool, pool.submit, jobs),
                    submit_side(pool, wrapped.submit, jobs),
                    repeats,
                ),
                "<= 1 us",
            )
        )
        rows.append(
            row(
                "ThreadPoolExecutor.submit: ContextExecutor vs bare",
                alternate(pool_batch(pool.submit, jobs), pool_batch(wrapped.submit, jobs), repeats),
                goal,
            )
        )
        rows.append(
            row(
                "Executor.map: ContextExecutor vs bare",
                alternate(map_batch(pool.map, jobs), map_batch(wrapped.map, jobs), repeats),
                goal,
            )
        )
        for name, factory in (
            ("asyncio", asyncio.new_event_loop),
            ("uvloop", uvloop.new_event_loop),
        ):
            rows.append(
                row(
                    f"run_in_executor ({name}): helper vs bare",
                    alternate(
                        loop_batch(factory, pool, jobs, helper=False),
                        loop_batch(factory, pool, jobs, helper=True),
                        repeats,
                    ),
                    goal,
                )
            )

        def installed_batch() -> float:
            install()
            try:
                return pool_batch(pool.submit, jobs)()
            finally:
                uninstall()

        rows.append(
            row(
                "ThreadPoolExecutor.submit: after install() vs bare",
                alternate(pool_batch(pool.submit, jobs), installed_batch, repeats),
                goal,
            )
        )
    threads = max(50, jobs // 20)
    rows.append(
        row(
            "Thread start + join: ContextThread vs threading.Thread",
            alternate(
                thread_batch(threading.Thread, threads),
                thread_batch(ContextThread, threads),
                repeats,
            ),
            goal,
        )
    )
    return rows


def bench_processes(jobs: int, repeats: int) -> list[str]:
    enter_request_stores()
    with ProcessPoolExecutor(max_workers=2) as pool:
        wrapped = ContextExecutor(pool)
        pool_batch(pool.submit, jobs)()  # start the workers before timing
        result = alternate(pool_batch(pool.submit, jobs), pool_batch(wrapped.submit, jobs), repeats)
    assert isinstance(carry_stores(noop), ProcessJob)
    return [row("ProcessPoolExecutor.submit, 3 small stores carried, vs bare", result, "(info)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer jobs and repetitions")
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    number = 20_000 if args.quick else 100_000
    # Round trips: many short samples, so that pairs see the same conditions.
    trip_repeats = 9 if args.quick else 4 * args.repeats
    jobs = 500 if args.quick else 1_000
    process_jobs = 200 if args.quick else 500

    print(
        f"CPython {platform.python_version()} on {platform.machine()}, {repeats} alternating "
        "repeats, medians per job"
    )
    print()
    print(f"The per-job work alone ({number} calls per sample):")
    print()
    print(HEADER)
    for line in bench_work(number, repeats):
        print(line)
    print()
    print(f"Round trips with a trivial job ({jobs} jobs per sample, 2 worker threads):")
    print()
    print(HEADER)
    for line in bench_round_trips(jobs, trip_repeats):
        print(line)
    print()
    print(f"Process jobs ({process_jobs} trivial jobs per sample, 2 worker processes):")
    print()
    print(HEADER)
    for line in bench_processes(process_jobs, trip_repeats):
        print(line)


if __name__ == "__main__":
    main()
