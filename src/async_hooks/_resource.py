"""AsyncResource: re-attach callbacks to the context where they were created.

A resource captures the whole current context when it is created (every
AsyncLocalStorage's store) plus an execution frame of its own, so code run
in its scope sees the creator's stores and the resource's ids. Each call
runs in a fresh copy of that context (docs/semantics.md, "bind and snapshot"): calls do not see each
other's changes, and may nest or recurse.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

from . import _hooks
from ._accelerator import speedups
from ._coroutines import (
    ContextCoroutine,
    bind_if_coroutine,
    call_with,
    is_foreign_coroutine_type,
)
from ._execution import ExecutionFrame, current_frame, new_async_id, next_async_id
from ._validation import (
    describe,
    not_callable_error,
    require_callable,
    validate_async_type,
    validate_trigger_async_id,
)
from .errors import InvalidArgTypeError, ResourceDestroyedError

P = ParamSpec("P")
R = TypeVar("R")

ANONYMOUS_TYPE = "bound-anonymous-fn"

# Weak references to resources whose destroy is due on garbage collection,
# by async id. Holding the reference here keeps its callback alive. No lock:
# the callback may run inside the collector, triggered while this very thread
# holds any lock; single dict operations are atomic under the GIL.
_destroy_on_collect: dict[int, weakref.ref[AsyncResource]] = {}


def _collected(async_id: int) -> Callable[[weakref.ref[AsyncResource]], None]:
    def on_collect(_: weakref.ref[AsyncResource]) -> None:
        # Runs inside the collector or a dealloc: only queue, never dispatch.
        if _destroy_on_collect.pop(async_id, None) is not None:
            _hooks.queue_destroy(async_id)

    return on_collect


class _StaticBind(Protocol):
    def __call__(self, fn: Callable[P, R], /, type: str | None = None) -> Callable[P, R]: ...


class _InstanceBind(Protocol):
    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


class _BindDescriptor:
    """``AsyncResource.bind(fn, type=None)`` on the class, ``res.bind(fn)`` on an instance.

    Node has both under one name; a descriptor gives Python the same.
    """

    @overload
    def __get__(self, instance: None, owner: type[AsyncResource]) -> _StaticBind: ...

    @overload
    def __get__(self, instance: AsyncResource, owner: type[AsyncResource]) -> _InstanceBind: ...

    def __get__(
        self, instance: AsyncResource | None, owner: type[AsyncResource]
    ) -> _StaticBind | _InstanceBind:
        if instance is None:
            return _bind_new_resource
        return instance._bind


def _bind_new_resource(fn: Callable[P, R], /, type: str | None = None) -> Callable[P, R]:
    """Bind ``fn`` to the current context through a new AsyncResource."""
    require_callable(fn, "fn")
    if type is None:
        type = getattr(fn, "__name__", None) or ANONYMOUS_TYPE
    return AsyncResource(type)._bind(fn)


class _PureResourceScope:
    """The hot path of AsyncResource in pure Python (``_speedups.ResourceBase`` in C).

    ``AsyncResource.__init__`` is the other half of it (compiled as
    ``ResourceBase.__init__``).
    """

    __slots__ = ("_async_id", "_context", "_destroyed", "_trigger_async_id", "_type")

    _async_id: int
    _context: Context
    _trigger_async_id: int
    _type: str
    _destroyed: bool

    def run_in_async_scope(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` in this resource's scope, between ``before`` and ``after``.

        Inside, the stores are those of the resource's creation and
        ``execution_async_id()`` is this resource's id. A returned coroutine
        keeps that scope (and its before/after) for each of its steps.
        """
        context = self._context.copy()
        try:
            if _hooks.enabled.scope_events:
                return context.run(_run_between_events, context, fn, args, kwargs, self)
            result = context.run(call_with, fn, args, kwargs) if args or kwargs else context.run(fn)
        except TypeError:
            if not callable(fn):
                raise not_callable_error(fn, "fn") from None
            raise
        return bind_if_coroutine(result, context, self._async_id, self)


def _run_between_events(
    context: Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    resource: _PureResourceScope,
) -> Any:
    async_id = resource._async_id
    _hooks.emit_before(async_id)
    try:
        result = fn(*args, **kwargs)
    finally:
        _hooks.emit_after(async_id)
    return bind_if_coroutine(result, context, async_id, resource)


def _bound_closure(
    base_context: Context, fn: Callable[..., Any], async_id: int, resource: _PureResourceScope
) -> Callable[..., Any]:
    # run_in_async_scope, unrolled into one closure: bound functions are
    # called on hot paths (event listeners, pool callbacks).
    copy_base_context = base_context.copy
    enabled = _hooks.enabled

    def bound(*args: Any, **kwargs: Any) -> Any:
        context = copy_base_context()
        if enabled.scope_events:
            return context.run(_run_between_events, context, fn, args, kwargs, resource)
        result = context.run(call_with, fn, args, kwargs) if args or kwargs else context.run(fn)
        if result is None or (
            type(result) is not CoroutineType and not is_foreign_coroutine_type(type(result))
        ):
            return result
        return ContextCoroutine(result, context, async_id, resource)

    return bound


if TYPE_CHECKING or speedups is None:
    _ResourceBase = _PureResourceScope
    _new_bound_function = _bound_closure
else:
    _ResourceBase = speedups.ResourceBase
    _new_bound_function = speedups.BoundFunction


def _validate_manual_destroy(value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgTypeError(
            'The "require_manual_destroy" argument must be of type bool. '
            f"Received {describe(value)}"
        )


def _destroy_when_collected(resource: AsyncResource) -> None:
    async_id = resource._async_id
    _destroy_on_collect[async_id] = weakref.ref(resource, _collected(async_id))


class AsyncResource(_ResourceBase):
    """A resource of the embedder's: it emits lifecycle events and owns a scope.

    Subclass it, as in Node, for a pool's task, a query or a connection.
    ``init`` is emitted at construction; ``destroy`` by ``emit_destroy()``,
    or when the object is garbage collected if a destroy hook was enabled at
    construction and ``require_manual_destroy`` is false.
    """

    # The fields are the base's.
    __slots__ = ("__weakref__",)

    bind = _BindDescriptor()

    if TYPE_CHECKING or speedups is None:
        # Compiled as ResourceBase.__init__, with the same checks in the same order.

        def __init__(
            self,
            type: str,
            trigger_async_id: int | None = None,
            *,
            require_manual_destroy: bool = False,
        ) -> None:
            validate_async_type(type)
            if not isinstance(require_manual_destroy, bool):
                _validate_manual_destroy(require_manual_destroy)  # raises
            if trigger_async_id is None:
                trigger_async_id = current_frame.get().async_id
            else:
                validate_trigger_async_id(trigger_async_id)
            if _hooks.pending_destroys:
                _hooks.flush_pending_destroys()

            async_id = new_async_id()
            self._async_id = async_id
            self._trigger_async_id = trigger_async_id
            self._type = type
            self._destroyed = False
            context = copy_context()
            context.run(current_frame.set, ExecutionFrame(async_id, trigger_async_id, self))
            self._context = context

            if _hooks.enabled.init:
                _hooks.emit_init(async_id, type, trigger_async_id, self)
            if _hooks.enabled.destroy and not require_manual_destroy:
                _destroy_when_collected(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if speedups is not None:
            speedups.own_methods(cls)  # see below the class

    def async_id(self) -> int:
        """The unique id of this resource."""
        return self._async_id

    def trigger_async_id(self) -> int:
        """The id of the execution that caused this resource to be created."""
        return self._trigger_async_id

    @property
    def type(self) -> str:
        """The type given at construction."""
        return self._type

    if TYPE_CHECKING:
        # The typed faces of the base's method (compiled or _PureResourceScope).

        @overload
        def run_in_async_scope(
            self, fn: Callable[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
        ) -> Coroutine[Any, Any, R]: ...

        @overload
        def run_in_async_scope(
            self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
        ) -> R: ...

        def run_in_async_scope(
            self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
        ) -> Any: ...

    def _bind(self, fn: Callable[P, R], /) -> Callable[P, R]:
        require_callable(fn, "fn")
        bound = _new_bound_function(self._context, fn, self._async_id, self)
        # Missing attributes (a partial has no __name__) are skipped by update_wrapper.
        return cast("Callable[P, R]", functools.update_wrapper(bound, fn))

    def emit_destroy(self) -> AsyncResource:
        """Emit ``destroy`` for this resource; returns it. A second call raises."""
        if self._destroyed:
            raise ResourceDestroyedError(
                f"emit_destroy() was already called for {self._type} {self._async_id}"
            )
        self._destroyed = True
        _destroy_on_collect.pop(self._async_id, None)
        if _hooks.enabled.destroy:
            _hooks.emit_destroy(self._async_id)
        return self

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} type={self._type!r} async_id={self._async_id} "
            f"trigger_async_id={self._trigger_async_id}>"
        )


if speedups is not None:
    # As for AsyncLocalStorage: the method's own type must be the instance's.
    speedups.own_methods(AsyncResource)
    # What the compiled __init__ calls back into.
    speedups.configure_resources(
        validate_async_type=validate_async_type,
        validate_trigger_async_id=validate_trigger_async_id,
        validate_manual_destroy=_validate_manual_destroy,
        next_async_id=next_async_id,
        execution_frame=ExecutionFrame,
        destroy_when_collected=_destroy_when_collected,
    )
