"""Executors, ``run_in_executor`` and done-callbacks that carry the submitter's stores.

``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` run each job in
the worker thread's own context: the submitter's stores are lost, and a
value one job enters is still there for the next job of the same worker.
The helpers here capture the context once per job, in the submitting
thread, and run the job in that copy, so each job sees exactly its
submitter's stores and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextvars import Context
from typing import Any, Generic, ParamSpec, TypeVar

from .._policy import Crossing, capture_context
from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError, InvalidArgValueError
from ._processes import carry_stores

P = ParamSpec("P")
R = TypeVar("R")

_IN_PROCESS_OR_PROCESSES = (Crossing.POOLS, Crossing.THREADS, Crossing.PROCESSES)
_PROCESSES = Crossing.PROCESSES  # read per job: a module constant is the cheapest read


class ContextExecutor(Executor):
    """Wraps any ``concurrent.futures.Executor`` so that each job carries its submitter's stores.

    ``submit`` and ``map`` capture the context per job. For a
    ``ProcessPoolExecutor`` (or a ``ContextExecutor`` over one, or
    ``crossing=Crossing.PROCESSES``) the jobs carry the declared stores as
    text instead, and each runs in a fresh context in the worker process;
    an in-process ``crossing`` for such an executor is refused here, since
    a context cannot be pickled. It works behind ``loop.run_in_executor``
    and :func:`run_in_executor` alike. ``shutdown`` and the ``with`` block
    act on the wrapped executor.
    """

    def __init__(self, executor: Executor, *, crossing: Crossing | None = None) -> None:
        if not isinstance(executor, Executor):
            raise InvalidArgTypeError(
                'The "executor" argument must be a concurrent.futures.Executor. '
                f"Received {describe(executor)}"
            )
        in_processes = _runs_in_processes(executor)
        if crossing is None:
            crossing = Crossing.PROCESSES if in_processes else Crossing.POOLS
        elif crossing not in _IN_PROCESS_OR_PROCESSES:
            raise InvalidArgValueError(
                'The "crossing" argument must be Crossing.POOLS, Crossing.THREADS or '
                f"Crossing.PROCESSES. Received {describe(crossing)}"
            )
        elif in_processes and crossing is not _PROCESSES:
            raise InvalidArgValueError(
                'The "crossing" argument must be Crossing.PROCESSES (or None) for an executor '
                f"that runs jobs in other processes ({type(executor).__name__}). "
                f"Received {describe(crossing)}"
            )
        self._executor = executor
        self._crossing = crossing

    @property
    def executor(self) -> Executor:
        """The wrapped executor."""
        return self._executor

    @property
    def crossing(self) -> Crossing:
        """The boundary its jobs cross: POOLS for threads, PROCESSES for processes."""
        return self._crossing

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        if self._crossing is _PROCESSES:
            return self._executor.submit(carry_stores(fn), *args, **kwargs)
        require_callable(fn, "fn")
        run_in_captured: Callable[..., R] = capture_context(self._crossing).run
        return self._executor.submit(run_in_captured, fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[R]:
        if self._crossing is _PROCESSES:
            # One submitter for the whole map: one carrier, which chunks can share.
            return self._executor.map(
                carry_stores(fn), *iterables, timeout=timeout, chunksize=chunksize
            )
        # Executor.map submits through self.submit: one captured context per item.
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait, cancel_futures=cancel_futures)

    def __repr__(self) -> str:
        return f"<ContextExecutor {self._executor!r} crossing={self._crossing.name}>"


def _runs_in_processes(executor: Executor) -> bool:
    if isinstance(executor, ContextExecutor):
        return executor.crossing is _PROCESSES
    return isinstance(executor, ProcessPoolExecutor)


def bind_callback(fn: Callable[P, R], /) -> Callable[P, R]:
    """``fn`` bound to the caller's stores, for ``Future.add_done_callback`` and the like.

    A ``concurrent.futures`` done-callback runs in whichever thread completes
    the future (a worker's context) unless it was added after completion.
    The bound callback runs in a fresh copy of the context captured here,
    with the policy for ``Crossing.POOLS`` applied. The original function is
    its ``__wrapped__``.
    """
    require_callable(fn, "fn")
    return BoundCallback(fn, capture_context(Crossing.POOLS))


class BoundCallback(Generic[P, R]):
    """What ``bind_callback`` returns: ``fn`` run in a copy of a captured context.

    A small class rather than a ``functools.wraps`` closure: binding happens
    once per callback, on hot paths, and copying the metadata costs more
    than the rest of the work together.
    """

    __slots__ = ("__wrapped__", "_context")

    def __init__(self, fn: Callable[P, R], context: Context) -> None:
        self.__wrapped__ = fn
        self._context = context

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # A copy per call: concurrent or repeated calls never share changes.
        return self._context.copy().run(self.__wrapped__, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<bound callback {self.__wrapped__!r}>"


def run_in_executor(
    executor: Executor | None, fn: Callable[..., R], /, *args: Any
) -> asyncio.Future[R]:
    """``loop.run_in_executor(executor, fn, *args)`` on the running loop, carrying the stores.

    ``executor`` may be None (the loop's default executor), any thread-based
    executor, a ``ProcessPoolExecutor`` (declared stores only), or a
    :class:`ContextExecutor`, which carries the stores its own way (its
    ``crossing``).
    """
    loop = asyncio.get_running_loop()
    if isinstance(executor, ContextExecutor):
        # It captures per job itself, with its own crossing: a second capture
        # here would override that one, and cannot be pickled for processes.
        require_callable(fn, "fn")
        return loop.run_in_executor(executor, fn, *args)
    if isinstance(executor, ProcessPoolExecutor):
        return loop.run_in_executor(executor, carry_stores(fn), *args)
    require_callable(fn, "fn")
    return loop.run_in_executor(executor, capture_context(Crossing.POOLS).run, fn, *args)


async def to_thread(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``asyncio.to_thread`` that applies the stores' policy.

    ``asyncio.to_thread`` already copies the whole context into the thread;
    this one also resets the stores declared not to cross ``Crossing.POOLS``.
    """
    require_callable(fn, "fn")
    loop = asyncio.get_running_loop()
    context = capture_context(Crossing.POOLS)
    job = functools.partial(context.run, fn, *args, **kwargs)
    return await loop.run_in_executor(None, job)
