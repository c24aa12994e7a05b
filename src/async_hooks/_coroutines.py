"""Coroutines that run every step inside one captured context.

A coroutine object does not run when it is created, so a function that
returns one has not done its work by the time ``run``/``bind``/... restore
the caller's context. ``ContextCoroutine`` closes that gap (docs/semantics.md, "Coroutines"):
each ``send``/``throw``/``close`` of the wrapped coroutine runs in the
context that was current when the function was called, and, for a resource
scope, between that resource's ``before`` and ``after`` events.

Changes the coroutine makes to its context stay in that context: a value it
enters does not reach the code awaiting it, which is Node's behaviour and
what :func:`async_hooks.isolated` offers on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from types import CoroutineType, TracebackType
from typing import Any, TypeVar

from . import _hooks
from ._accelerator import speedups
from ._execution import ExecutionFrame, current_frame
from ._validation import not_callable_error

# Bound once: send() reads it on every step.
_get_frame = current_frame.get


R = TypeVar("R")


class CoroutineWrapper(Coroutine[Any, Any, R]):
    """What every coroutine that drives another one step by step shares.

    A subclass defines ``send``, ``throw_exception`` and ``close``. This
    class makes it awaitable, hands ``throw`` a single exception, and forwards
    every attribute it does not define (``__name__``, ``__qualname__``,
    ``cr_frame``, ``cr_await``, ...) to the wrapped coroutine, also
    ``__wrapped__``, so that asyncio's Task repr, ``get_stack()`` and
    debuggers see the user's coroutine.
    """

    __slots__ = ("_coro",)

    def __init__(self, coro: Coroutine[Any, Any, R]) -> None:
        self._coro = coro

    @property
    def __wrapped__(self) -> Coroutine[Any, Any, R]:
        return self._coro

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        return self.throw_exception(as_exception(typ, val, tb))

    def throw_exception(self, error: BaseException, /) -> Any:
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, R]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> CoroutineWrapper[R]:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coro, name)


class ContextCoroutine(CoroutineWrapper[R]):
    """Drives ``coro`` so that each of its steps runs in ``context``.

    When ``async_id`` is given, each step also emits ``before``/``after``
    for it; ``resource`` is kept alive for as long as the coroutine is.
    """

    __slots__ = ("_async_id", "_context", "_driver_frame", "_resource")

    def __init__(
        self,
        coro: Coroutine[Any, Any, R],
        context: Context,
        async_id: int | None = None,
        resource: object = None,
    ) -> None:
        super().__init__(coro)
        self._context = context
        self._async_id = async_id
        self._resource = resource
        # The driver's frame last copied into ``context`` (see _driven_step).
        self._driver_frame: ExecutionFrame | None = None

    def send(self, value: Any, /) -> Any:
        if self._async_id is None:
            frame = _get_frame()
            if frame is self._driver_frame:
                return self._context.run(self._coro.send, value)
            self._driver_frame = frame
            return self._context.run(_driven_step, frame, self._coro.send, value)
        return self._context.run(self._scoped_step, self._coro.send, value)

    def throw_exception(self, error: BaseException, /) -> Any:
        if self._async_id is None:
            frame = self._driver_frame = _get_frame()
            return self._context.run(_driven_step, frame, self._coro.throw, error)
        return self._context.run(self._scoped_step, self._coro.throw, error)

    def close(self) -> None:
        # finally-blocks of the coroutine run here: give them their context.
        self._context.run(self._coro.close)

    def _scoped_step(self, method: Callable[[Any], Any], argument: Any) -> Any:
        async_id = self._async_id
        assert async_id is not None
        if _hooks.enabled.before:
            _hooks.emit_before(async_id)
        try:
            return method(argument)
        finally:
            if _hooks.enabled.after:
                _hooks.emit_after(async_id)

    def __repr__(self) -> str:
        return f"<ContextCoroutine {self._coro!r}>"


def _driven_step(frame: ExecutionFrame, method: Callable[[Any], Any], argument: Any) -> Any:
    # A coroutine of run/exit/snapshot/isolated carries stores, not an
    # execution scope: each step reports the ids of the code driving it (with
    # runtime tracking, the task awaiting it), as Node's promise continuations
    # do. Only the library sets the frame, always with a reset, so the frame
    # set here stays until the driver changes: send() skips this call then.
    current_frame.set(frame)
    return method(argument)


def as_exception(
    typ: type[BaseException] | BaseException, val: object, tb: TracebackType | None
) -> BaseException:
    # The three-argument throw() is deprecated on native coroutines since 3.12,
    # but `yield from` still hands it to us: pass a single exception on.
    if isinstance(typ, BaseException):
        error = typ
    elif isinstance(val, BaseException):
        error = val
    elif val is None:
        error = typ()
    else:
        error = typ(val)
    if tb is not None:
        error = error.with_traceback(tb)
    return error


_foreign_coroutine_types: dict[type, bool] = {}


def is_foreign_coroutine_type(cls: type) -> bool:
    # Coroutines that are not `async def` ones (Cython's, for example). Cached
    # per type: an ABC subclass check is too slow for every call's result.
    known = _foreign_coroutine_types.get(cls)
    if known is None:
        known = _foreign_coroutine_types[cls] = issubclass(cls, Coroutine)
    return known


def call_with(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """``fn(*args, **kwargs)``.

    ``context.run(call_with, fn, args, kwargs)`` passes the caller's argument
    tuple as it is, where ``context.run(fn, *args, **kwargs)`` would build a
    new one with ``fn`` in front: measurably cheaper on hot paths.
    """
    return fn(*args, **kwargs)


def is_coroutine(value: object) -> bool:
    """True for any coroutine object: native, ours, or another ``Coroutine``."""
    cls = type(value)
    return cls is CoroutineType or (value is not None and is_foreign_coroutine_type(cls))


def bind_if_coroutine(
    result: R,
    context: Context,
    async_id: int | None = None,
    resource: object = None,
) -> R:
    """``result`` itself, or, if it is a coroutine, one that runs in ``context``."""
    if is_coroutine(result):
        return ContextCoroutine(result, context, async_id, resource)  # type: ignore[arg-type, return-value]
    return result


if speedups is not None:
    # What the compiled hot path calls back into: it wraps coroutines with
    # this module's class and follows the same rules (docs/accelerator.md).
    speedups.configure(
        context_coroutine=ContextCoroutine,
        foreign_coroutine_types=_foreign_coroutine_types,
        is_foreign_coroutine_type=is_foreign_coroutine_type,
        not_callable_error=not_callable_error,
        current_frame=current_frame,
    )
