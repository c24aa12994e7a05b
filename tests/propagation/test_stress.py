"""Randomized stress: thousands of jobs across threads, pools and processes.

Several submitter threads each send jobs, every one with its own random
store values, to every kind of boundary at once, and each job enters
values of its own before it ends (as a careless job would). Every job must
see exactly its submitter's stores as the policy lets them cross: all of
``local`` and ``shared`` in process, only the declared ``shared`` in other
processes, never ``secret``.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from async_hooks.propagation import ContextExecutor, bind_callback, start_thread

from ._jobs import Seen, local, secret, seen_then_pollute, shared

pytestmark = [
    pytest.mark.usefixtures("clean_stores"),
    pytest.mark.filterwarnings(
        "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
    ),
]

SEED = 20261121
IN_PROCESS_JOBS = 6000
PROCESS_JOBS = 300
SUBMITTERS = 4
KINDS = ["thread", "pool.submit", "pool.map", "done-callback"]
PROCESS_KINDS = ["fork.submit", "spawn.submit"]


class Boundaries:
    """The real pools every job goes through, shared by all submitters."""

    def __init__(self) -> None:
        self.bare_pool = ThreadPoolExecutor(max_workers=2)
        self.pool = ContextExecutor(ThreadPoolExecutor(max_workers=4))
        self.fork = ContextExecutor(
            ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
        )
        self.spawn = ContextExecutor(
            ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        )
        # Fork the workers now, while this is the only busy thread: forking
        # in the middle of the submitters' work could copy a lock held by one.
        self.fork.submit(int).result()

    def shutdown(self) -> None:
        for executor in (self.bare_pool, self.pool, self.fork, self.spawn):
            executor.shutdown()

    def submit(self, kind: str, marker: int) -> Callable[[], Seen]:
        """Start one job; returns how to wait for what it saw."""
        if kind == "thread":
            box: list[Seen] = []
            thread = start_thread(lambda: box.append(seen_then_pollute(marker)))

            def joined() -> Seen:
                thread.join()
                return box[0]

            return joined
        if kind == "pool.submit":
            return self.pool.submit(seen_then_pollute, marker).result
        if kind == "pool.map":
            results = self.pool.map(seen_then_pollute, [marker])
            return lambda: next(iter(results))
        if kind == "done-callback":
            future: Future[None] = Future()
            seen_by_callback: Future[Seen] = Future()
            future.add_done_callback(
                bind_callback(lambda _: seen_by_callback.set_result(seen_then_pollute(marker)))
            )
            # Completed by a worker thread of a bare pool: the callback runs there.
            self.bare_pool.submit(future.set_result, None)
            return seen_by_callback.result
        executor = self.fork if kind == "fork.submit" else self.spawn
        return executor.submit(seen_then_pollute, marker).result


def plan(rng: random.Random, count: int, kinds: list[str]) -> list[tuple[str, int, int, int]]:
    # (kind, local value, shared value, secret value); values unique per job.
    values = rng.sample(range(10**9), 3 * count)
    return [
        (rng.choice(kinds), values[3 * i], values[3 * i + 1], values[3 * i + 2])
        for i in range(count)
    ]


def submit_all(
    boundaries: Boundaries, jobs: list[tuple[str, int, int, int]], mismatches: list[Any]
) -> None:
    pending = []
    for kind, local_value, shared_value, secret_value in jobs:
        with (
            local.with_scope(local_value),
            shared.with_scope(shared_value),
            secret.with_scope(secret_value),
        ):
            wait = boundaries.submit(kind, -local_value)
        in_process = kind in KINDS
        expected = (local_value if in_process else None, shared_value, "no secret")
        pending.append((kind, expected, wait))
    # The submitter's own context is untouched by its jobs.
    if (local.get_store(), shared.get_store(), secret.get_store()) != (None, None, "no secret"):
        mismatches.append(("submitter", None, local.get_store()))
    for kind, expected, wait in pending:
        got = wait()
        if got != expected:
            mismatches.append((kind, expected, got))


def test_every_job_sees_exactly_its_submitters_stores() -> None:
    rng = random.Random(SEED)
    jobs = plan(rng, IN_PROCESS_JOBS, KINDS) + plan(rng, PROCESS_JOBS, PROCESS_KINDS)
    rng.shuffle(jobs)
    boundaries = Boundaries()
    mismatches: list[Any] = []
    errors: list[BaseException] = []

    def submitter(share: list[tuple[str, int, int, int]]) -> None:
        try:
            submit_all(boundaries, share, mismatches)
        except BaseException as error:
            errors.append(error)

    try:
        threads = [
            threading.Thread(target=submitter, args=(jobs[i::SUBMITTERS],))
            for i in range(SUBMITTERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        boundaries.shutdown()
    assert errors == []
    assert mismatches == [], f"{len(mismatches)} jobs saw the wrong stores: {mismatches[:5]}"
    kinds_run = {kind for kind, *_ in jobs}
    assert kinds_run == set(KINDS) | set(PROCESS_KINDS)
