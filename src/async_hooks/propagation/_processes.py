"""Jobs for other processes that carry the submitter's declared stores, and nothing else.

A ``contextvars.Context`` cannot be pickled, so no store reaches a spawned
process on its own; and a forked process starts with a copy of whatever
context the forking thread had at fork time, stale for every later job. A
:class:`ProcessJob` carries the stores declared to cross
``Crossing.PROCESSES`` as text (``export_stores``) and, in the worker, runs
the function in a fresh, empty context with those stores entered
(``import_stores``): a forked worker's stale stores are invisible, and
nothing one job enters reaches the next.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping
from contextvars import Context
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from .._policy import Crossing, export_stores, import_stores
from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError

R = TypeVar("R")


class ProcessJob(Generic[R]):
    """``fn`` plus the declared stores of its submitter; picklable when ``fn`` is.

    Calling it (in any process) runs ``fn`` in a new, empty context inside
    ``import_stores(carrier, Crossing.PROCESSES)``.
    """

    __slots__ = ("carrier", "fn")

    def __init__(self, fn: Callable[..., R], carrier: Mapping[str, str]) -> None:
        self.fn = fn
        self.carrier = dict(carrier)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        # Context(): empty, not a copy. In a forked worker the current
        # context is the parent's stale one; no job may see it.
        return Context().run(self._run, args, kwargs)

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        with import_stores(self.carrier, Crossing.PROCESSES):
            return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[type[ProcessJob[R]], tuple[Callable[..., R], dict[str, str]]]:
        # Pickled once per job: the plain constructor call is the fast path.
        return (type(self), (self.fn, self.carrier))

    def __repr__(self) -> str:
        return f"<ProcessJob {self.fn!r} stores={sorted(self.carrier)}>"


def carry_stores(fn: Callable[..., R], /) -> ProcessJob[R]:
    """Wrap ``fn`` for another process, with the caller's declared stores.

    Use it wherever a picklable callable goes to another process:
    ``pool.apply_async(carry_stores(fn), args)``,
    ``Process(target=carry_stores(fn))``, ``executor.submit(carry_stores(fn))``.
    Raises ``StoreSerializationError`` now, in the caller, if a store's value
    cannot be serialized (unless that store's policy is to warn and skip).
    """
    require_callable(fn, "fn")
    return ProcessJob(fn, export_stores(Crossing.PROCESSES))


def start_process(
    target: Callable[..., object],
    /,
    *args: Any,
    mp_context: BaseContext | None = None,
    name: str | None = None,
    daemon: bool | None = None,
    **kwargs: Any,
) -> BaseProcess:
    """Start ``target(*args, **kwargs)`` in a new process that sees the caller's declared stores.

    ``mp_context`` picks the start method (``multiprocessing.get_context("spawn")``);
    by default, multiprocessing's own default.
    """
    if mp_context is None:
        mp_context = multiprocessing.get_context()
    elif not isinstance(mp_context, BaseContext):
        raise InvalidArgTypeError(
            'The "mp_context" argument must be a multiprocessing context. '
            f"Received {describe(mp_context)}"
        )
    process: BaseProcess = mp_context.Process(  # type: ignore[attr-defined]
        target=carry_stores(target), args=args, kwargs=kwargs, name=name, daemon=daemon
    )
    process.start()
    return process
