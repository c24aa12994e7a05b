"""AsyncLocalStorage: a store that follows a unit of work through every await,
task, callback and timer created inside it.

Each instance owns one ContextVar. ``get_store`` *is* that variable's C
``get`` method (bound on the instance), so reading a store costs exactly a
``ContextVar.get``; ``run`` is a set and a reset. Propagation is the
interpreter's own: asyncio copies the context into every task and callback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token, copy_context
from types import CoroutineType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from ._coroutines import (
    ContextCoroutine,
    bind_if_coroutine,
    call_with,
    is_coroutine,
    is_foreign_coroutine_type,
)
from ._execution import current_frame
from ._policy import Crossing, OnSerializeError, Serializer, live_stores, validate_policy
from ._resource import AsyncResource
from ._validation import describe, not_callable_error, require_callable
from .errors import InvalidArgTypeError

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


class AsyncLocalStorage(Generic[T]):
    """A store that stays coherent through asynchronous operations.

    ``get_store()`` returns the store of the current execution, or ``default``
    where no ``run``/``enter_with`` of this instance is in effect.
    """

    # Bound in __init__ to the ContextVar's own C method; see the module doc.
    get_store: Callable[[], T | None]

    def __init__(
        self,
        *,
        name: str = "",
        default: T | None = None,
        crosses: Crossing = Crossing.IN_PROCESS,
        serializer: Serializer | None = None,
        on_serialize_error: OnSerializeError = "raise",
    ) -> None:
        if not isinstance(name, str):
            raise InvalidArgTypeError(
                f'The "name" argument must be of type str. Received {describe(name)}'
            )
        self._name = name
        self._default = default
        # The propagation policy (docs/propagation.md): which boundaries the
        # store crosses, and how its value travels as text where it must.
        self._crosses, self._serializer, self._on_serialize_error = validate_policy(
            name, crosses, serializer, on_serialize_error
        )
        self._var: ContextVar[T | None] = self._new_var()
        self.get_store = self._var.get
        live_stores.register(self)

    def _new_var(self) -> ContextVar[T | None]:
        return ContextVar(f"AsyncLocalStorage({self._name!r})", default=self._default)

    @property
    def name(self) -> str:
        """The name given at construction; '' when none was."""
        return self._name

    @property
    def default(self) -> T | None:
        """What ``get_store()`` returns where this instance has no entry."""
        return self._default

    @property
    def crosses(self) -> Crossing:
        """The boundaries this store's value crosses into other work."""
        return self._crosses

    @property
    def serializer(self) -> Serializer | None:
        """Turns the value into text to cross processes or machines; None if never."""
        return self._serializer

    @property
    def on_serialize_error(self) -> OnSerializeError:
        """'raise' or 'warn' (skip the store) when its value cannot be serialized."""
        return self._on_serialize_error

    @overload
    def run(
        self,
        store: T | None,
        fn: Callable[P, Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def run(
        self, store: T | None, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...

    def run(self, store: T | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` with ``store`` as this instance's store.

        The store is seen by everything ``fn`` creates (tasks, callbacks,
        timers) and the previous one is back afterwards, also if ``fn``
        raises. If ``fn`` returns a coroutine, the coroutine is returned
        wrapped so that it keeps the store for its whole execution when
        awaited.
        """
        var = self._var
        token = var.set(store)
        try:
            result = fn(*args, **kwargs)
            # is_coroutine(), inlined: this is the hot path of every run().
            if type(result) is CoroutineType or (
                result is not None and is_foreign_coroutine_type(type(result))
            ):
                # Copied before the reset: the coroutine also sees what fn entered.
                result = ContextCoroutine(result, copy_context())
        except TypeError:
            # Checked only on failure: checking first would cost every call.
            if not callable(fn):
                raise not_callable_error(fn, "fn") from None
            raise
        finally:
            var.reset(token)
            if self._var is not var:  # fn called disable()
                self._end_disabled_scope(var)
        return result

    @overload
    def exit(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def exit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def exit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` outside of any store: inside, ``get_store()`` is None."""
        return self.run(None, fn, *args, **kwargs)

    def enter_with(self, store: T | None) -> None:
        """Make ``store`` the store for the rest of the current execution.

        In asyncio that is the rest of the current task or callback, and
        everything it schedules. Prefer ``run`` or ``with_scope``, which end.
        """
        self._var.set(store)

    def with_scope(self, store: T | None) -> StoreScope[T]:
        """A context manager that makes ``store`` current inside its block.

        ``with als.with_scope(store): ...`` is Node's
        ``using _ = als.withScope(store)``.
        """
        return StoreScope(self, store)

    def _end_disabled_scope(self, var: ContextVar[T | None]) -> None:
        if self._var is not var:
            # disable() ran inside the scope: what was entered after it ends here too.
            self._var.set(self._default)

    def disable(self) -> None:
        """Exit every context of this instance, as Node's ``disable()``.

        Afterwards ``get_store()`` returns the default everywhere until the
        next ``run``/``enter_with``. The instance drops its variable and
        starts a new one, so values entered before can never come back and
        the instance holds no reference to any store.
        """
        self._var = self._new_var()
        self.get_store = self._var.get

    # -- static helpers -----------------------------------------------------

    @staticmethod
    def bind(fn: Callable[P, R]) -> Callable[P, R]:
        """``fn`` bound to the current execution context (a new AsyncResource)."""
        return AsyncResource.bind(fn)

    @staticmethod
    def snapshot() -> SnapshotRunner:
        """Capture the current context; the result runs functions inside it.

        Every call of the returned runner uses a fresh copy of the captured
        context, so calls do not see each other's changes and may nest.
        """
        copy_captured = copy_context().copy
        get_frame = current_frame.get
        captured_frame = get_frame()

        def run_in_snapshot(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            context = copy_captured()
            frame = get_frame()
            if frame is not captured_frame:
                # A snapshot restores stores, not an execution scope (as in
                # Node): inside, the ids stay the caller's.
                context.run(current_frame.set, frame)
            try:
                result = (
                    context.run(call_with, fn, args, kwargs) if args or kwargs else context.run(fn)
                )
            except TypeError:
                if not callable(fn):
                    raise not_callable_error(fn, "fn") from None
                raise
            if result is None or (
                type(result) is not CoroutineType and not is_foreign_coroutine_type(type(result))
            ):
                return result
            return ContextCoroutine(result, context)

        return cast(SnapshotRunner, run_in_snapshot)

    def __repr__(self) -> str:
        return f"<AsyncLocalStorage name={self._name!r} store={self.get_store()!r}>"


# -- the seam for hot paths of other modules -----------------------------------
# A store's ContextVar is this module's. Code that cannot afford a context
# manager per call (a server middleware, once per request) sets and resets it
# through these two functions, and never keeps the variable: disable() gives
# the store a new one.


def _set(store: AsyncLocalStorage[T], value: T | None) -> Token[T | None]:
    return store._var.set(value)


def _reset(store: AsyncLocalStorage[T], token: Token[T | None]) -> None:
    store._var.reset(token)


def _bound_var_methods(
    store: AsyncLocalStorage[T],
) -> tuple[
    Callable[[T | None], Token[T | None]], Callable[[Token[T | None]], None], Callable[[], T | None]
]:
    """``(set, reset, get)`` of the store's variable, bound: no Python frame per call.

    For a store that only one runtime swaps on every call and that is never
    disabled (OpenTelemetry's runtime context): after ``disable()`` they
    would keep serving the old variable.
    """
    var = store._var
    return var.set, var.reset, var.get


class StoreScope(Generic[T]):
    """Returned by ``with_scope``: enters the store on ``__enter__``, restores on ``__exit__``."""

    __slots__ = ("_storage", "_store", "_token", "_var")

    def __init__(self, storage: AsyncLocalStorage[T], store: T | None) -> None:
        self._storage = storage
        self._store = store

    def __enter__(self) -> T | None:
        self._var = var = self._storage._var
        self._token = var.set(self._store)
        return self._store

    def __exit__(self, *exc_info: object) -> None:
        self._var.reset(self._token)
        self._storage._end_disabled_scope(self._var)


class SnapshotRunner(Protocol):
    """The runner returned by ``AsyncLocalStorage.snapshot()``."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


@overload
def isolated(target: Coroutine[Any, Any, R], /) -> Coroutine[Any, Any, R]: ...


@overload
def isolated(
    target: Callable[P, Coroutine[Any, Any, R]], /
) -> Callable[P, Coroutine[Any, Any, R]]: ...


def isolated(target: Any, /) -> Any:
    """Run a coroutine in a copy of its caller's context (Node's isolation).

    Python shares one context between a coroutine and the coroutine that
    awaits it, so ``enter_with`` inside an awaited coroutine is seen by its
    caller afterwards. ``await isolated(coro)`` (or a coroutine function
    decorated with ``@isolated``) keeps such changes inside the callee.
    """
    if is_coroutine(target):
        return ContextCoroutine(target, copy_context())
    require_callable(target, "target")

    @functools.wraps(target)
    def isolating(*args: Any, **kwargs: Any) -> Any:
        context = copy_context()
        return bind_if_coroutine(context.run(target, *args, **kwargs), context)

    return isolating
