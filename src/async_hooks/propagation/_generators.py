"""Generators and async generators bound to the context of their creation.

Bare Python runs every step of a generator in whatever context its consumer
has at that moment, so a value the generator enters (``enter_with``,
``ContextVar.set``) leaks out to the consumer, and a value the consumer
enters between two steps leaks in. An async generator abandoned mid-way is
closed later by the event loop's finalizer hook, in the context of whatever
code happened to drop the last reference.

TC39's AsyncContext rule is that a generator resumes in the context of its
creation. :func:`bind_generator` (or the :func:`bound_generator` decorator)
gives Python that rule: the wrapper captures a copy of the creating context,
and each ``next``/``send``/``throw``/``close`` (``__anext__``/``asend``/
``athrow``/``aclose`` for async generators) runs inside it. The generator's
own changes persist from one of its steps to the next, and never reach its
consumer. An abandoned bound async generator is closed in that same context,
both when it is garbage collected and when the loop shuts down.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from contextvars import Context, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .._coroutines import as_exception
from .._execution import ExecutionFrame, current_frame
from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError

Y = TypeVar("Y")
S = TypeVar("S")
R = TypeVar("R")
P = ParamSpec("P")

# Bound once: read at every step.
_get_frame = current_frame.get


class _Driven:
    """Runs steps in one context, with the execution scope of whoever drives them.

    The captured context carries the creation's *stores*; the execution ids
    (``execution_async_id()`` and friends) inside a step are those of the
    code driving it, as for the coroutines of ``run``/``snapshot`` and as in
    Node, where a generator body runs in its caller's execution. The driver's
    frame is copied into the context only when the driver changes.
    """

    __slots__ = ("_driver_frame", "_run")

    def __init__(self, context: Context) -> None:
        # Bound once: a step is then one Context.run of a C method.
        self._run = context.run
        self._driver_frame: ExecutionFrame | None = None

    def _drive(self, method: Callable[..., Any], /, *args: Any) -> Any:
        frame = _get_frame()
        if frame is self._driver_frame:
            return self._run(method, *args)
        return self._run(self._driven_by, frame, method, args)

    def _driven_by(self, frame: ExecutionFrame, method: Callable[..., Any], args: Any) -> Any:
        # Inside the context: set the frame only once the context is entered.
        current_frame.set(frame)
        self._driver_frame = frame
        return method(*args)


class BoundGenerator(_Driven, Generator[Y, S, R]):
    """A generator whose every step runs in one context captured at creation.

    Works wherever a generator does, ``yield from`` included; attributes
    such as ``gi_frame`` or ``__name__`` are the wrapped generator's.
    """

    __slots__ = ("_gen", "_next")

    def __init__(self, gen: Generator[Y, S, R], context: Context) -> None:
        super().__init__(context)
        self._gen = gen
        self._next = gen.__next__

    def __next__(self) -> Y:
        # The hot path (every item of a for loop): _step and _drive, inlined.
        frame = _get_frame()
        try:
            if frame is self._driver_frame:
                return self._run(self._next)
            return self._run(self._driven_by, frame, self._next, ())  # type: ignore[no-any-return]
        except RuntimeError:
            if _is_running(self._gen):
                return self._next()  # raises the generator's own error, as in _step
            raise

    def send(self, value: S, /) -> Y:
        return self._step(self._gen.send, value)  # type: ignore[no-any-return]

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Y:
        return self._step(self._gen.throw, as_exception(typ, val, tb))  # type: ignore[no-any-return]

    def close(self) -> None:
        # The generator's finally blocks run here: they see its own context.
        self._step(self._gen.close)

    def _step(self, method: Callable[..., Any], /, *args: Any) -> Any:
        try:
            return self._drive(method, *args)
        except RuntimeError:
            # Context.run refuses a context that is already entered: the
            # generator is running (re-entered, or stepped from a second
            # thread). Let it raise its own "already executing" ValueError
            # rather than a misleading "context already entered".
            if _is_running(self._gen):
                return method(*args)
            raise

    def __iter__(self) -> BoundGenerator[Y, S, R]:
        return self

    def __del__(self) -> None:
        # Without this, an abandoned generator would be closed by the
        # collector in whatever context happens to be current at that time.
        if getattr(self._gen, "gi_frame", True) is not None:
            self.close()

    if not TYPE_CHECKING:  # hidden from mypy, which would then take us for any type

        def __getattr__(self, name: str) -> Any:
            if name in _Driven.__slots__ or name in BoundGenerator.__slots__:
                raise AttributeError(name)
            return getattr(self._gen, name)

    def __repr__(self) -> str:
        return f"<BoundGenerator {self._gen!r}>"


class _StepInContext(Coroutine[Any, Any, R]):
    """The awaitable of one async generator step, driven by its owner's context.

    ContextCoroutine does the same with more options (resource scopes); this
    one is the lean version for a path taken at every ``async for`` item.
    """

    __slots__ = ("_owner", "_send", "_step")

    def __init__(self, owner: _Driven, step: Coroutine[Any, Any, R]) -> None:
        self._owner = owner
        self._step = step
        self._send = step.send

    def __next__(self) -> Any:
        # What ``await`` calls at each step: _Driven._drive, inlined.
        owner = self._owner
        frame = _get_frame()
        if frame is owner._driver_frame:
            return owner._run(self._send, None)
        return owner._run(owner._driven_by, frame, self._send, (None,))

    def send(self, value: Any, /) -> Any:
        return self._owner._drive(self._send, value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        return self._owner._drive(self._step.throw, as_exception(typ, val, tb))

    def close(self) -> None:
        self._owner._drive(self._step.close)

    def __await__(self) -> Generator[Any, None, R]:
        return self

    def __iter__(self) -> _StepInContext[R]:
        return self


class BoundAsyncGenerator(_Driven, AsyncGenerator[Y, S]):
    """An async generator whose every step runs in one context captured at creation.

    Each ``__anext__``/``asend``/``athrow``/``aclose`` returns an awaitable
    that runs the generator's code in that context. If the generator is
    abandoned before it finishes, the event loop closes it in that context
    too; see :meth:`_first_call` for how.
    """

    __slots__ = ("__weakref__", "_agen", "_context", "_hooks_done")

    def __init__(self, agen: AsyncGenerator[Y, S], context: Context) -> None:
        super().__init__(context)
        self._agen = agen
        self._context = context
        self._hooks_done = False

    def __aiter__(self) -> BoundAsyncGenerator[Y, S]:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Y]:
        if not self._hooks_done:
            return self._first_call(self._agen.__anext__)
        return _StepInContext(self, self._agen.__anext__())

    def asend(self, value: S, /) -> Coroutine[Any, Any, Y]:
        if not self._hooks_done:
            return self._first_call(self._agen.asend, value)
        return _StepInContext(self, self._agen.asend(value))

    def athrow(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Coroutine[Any, Any, Y]:
        error = as_exception(typ, val, tb)
        if not self._hooks_done:
            return self._first_call(self._agen.athrow, error)
        return _StepInContext(self, self._agen.athrow(error))

    def aclose(self) -> Coroutine[Any, Any, None]:
        if not self._hooks_done:
            return self._first_call(self._agen.aclose)
        return _StepInContext(self, self._agen.aclose())

    def _first_call(
        self, method: Callable[..., Coroutine[Any, Any, R]], *args: Any
    ) -> Coroutine[Any, Any, R]:
        """Call ``method`` with the thread's async generator hooks adjusted.

        A native async generator records the thread's finalizer hook, and
        hands itself to the firstiter hook, on the first call of one of its
        methods. For that one call the hooks are swapped, so that:

        * the loop registers this wrapper (not the raw generator) for its
          ``shutdown_asyncgens``, which then closes it through ``aclose``
          above, in the generator's context;
        * the raw generator keeps a finalizer that hands the loop's own
          finalizer a new wrapper around it, so the ``aclose`` the loop
          schedules for an abandoned generator runs in the generator's
          context instead of the one that dropped it.

        The loop's own hooks do the actual work, so this composes with
        asyncio, uvloop and any loop that uses the standard hooks.
        """
        self._hooks_done = True
        firstiter, finalizer = sys.get_asyncgen_hooks()
        if firstiter is None and finalizer is None:
            # No loop is watching async generators: nothing to redirect.
            return _StepInContext(self, method(*args))
        context = self._context
        sys.set_asyncgen_hooks(
            firstiter=_register_wrapper(firstiter, self),
            finalizer=_finalizer_in_context(finalizer, context),
        )
        try:
            awaitable = method(*args)
        finally:
            sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
        return _StepInContext(self, awaitable)

    if not TYPE_CHECKING:  # hidden from mypy, which would then take us for any type

        def __getattr__(self, name: str) -> Any:
            if name in _Driven.__slots__ or name in BoundAsyncGenerator.__slots__:
                raise AttributeError(name)
            return getattr(self._agen, name)

    def __repr__(self) -> str:
        return f"<BoundAsyncGenerator {self._agen!r}>"


def _is_running(gen: object) -> bool:
    # gi_running is not part of the Generator ABC: generators made by other
    # tools (Cython) may lack it, and are then never reported as running.
    return getattr(gen, "gi_running", False) is True


AsyncGenHook = Callable[[AsyncGenerator[Any, Any]], None]


def _register_wrapper(
    firstiter: AsyncGenHook | None, wrapper: BoundAsyncGenerator[Any, Any]
) -> AsyncGenHook | None:
    if firstiter is None:
        return None

    def register(_: AsyncGenerator[Any, Any]) -> None:
        firstiter(wrapper)

    return register


def _finalizer_in_context(finalizer: AsyncGenHook | None, context: Context) -> AsyncGenHook | None:
    if finalizer is None:
        return None

    def finalize(agen: AsyncGenerator[Any, Any]) -> None:
        # The loop gets a fresh wrapper around the dying generator, so the
        # aclose() it schedules runs in the generator's context whatever the
        # loop does (asyncio and uvloop: a task made where the hook is called;
        # trio: a system task with a context of its own). The hook also runs
        # in a copy of that context, for a loop that captures the current one.
        rebound = BoundAsyncGenerator(agen, context)
        rebound._hooks_done = True  # the generator's hooks were set long ago
        context.copy().run(finalizer, rebound)

    return finalize


@overload
def bind_generator(gen: Generator[Y, S, R], /) -> BoundGenerator[Y, S, R]: ...


@overload
def bind_generator(gen: AsyncGenerator[Y, S], /) -> BoundAsyncGenerator[Y, S]: ...


def bind_generator(gen: Any, /) -> Any:
    """Bind a generator or async generator to a copy of the current context.

    Call it right where the generator is created (``bind_generator(gen())``):
    an async generator must not have been iterated yet for its finalization
    to be redirected. A generator that is already bound is returned as is.
    """
    if isinstance(gen, BoundGenerator | BoundAsyncGenerator):
        return gen
    if isinstance(gen, Generator):
        return BoundGenerator(gen, copy_context())
    if isinstance(gen, AsyncGenerator):
        return BoundAsyncGenerator(gen, copy_context())
    raise InvalidArgTypeError(
        f'The "gen" argument must be a generator or an async generator. Received {describe(gen)}'
    )


@overload
def bound_generator(
    fn: Callable[P, Generator[Y, S, R]], /
) -> Callable[P, BoundGenerator[Y, S, R]]: ...


@overload
def bound_generator(
    fn: Callable[P, AsyncGenerator[Y, S]], /
) -> Callable[P, BoundAsyncGenerator[Y, S]]: ...


def bound_generator(fn: Callable[..., Any], /) -> Callable[..., Any]:
    """Decorate a generator function so each generator it makes is bound.

    The context is captured per call, when the generator is created, as
    TC39's AsyncContext proposal specifies for generators.
    """
    require_callable(fn, "fn")

    @functools.wraps(fn)
    def create_bound(*args: Any, **kwargs: Any) -> Any:
        return bind_generator(fn(*args, **kwargs))

    return create_bound
