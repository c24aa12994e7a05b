"""Node's ``EventEmitterAsyncResource`` for pyee (optional extra ``async-hooks[pyee]``).

A plain pyee emitter calls its listeners in the context of the code that
calls ``emit``, exactly like Node's ``EventEmitter``; nothing is needed for
that. Node's ``EventEmitterAsyncResource`` instead owns an ``AsyncResource``
created with the emitter, and runs every ``emit`` in that resource's scope:
listeners see the stores of the emitter's *creation* and its async ids, and
lifecycle hooks see ``before``/``after`` around each emit. This module gives
pyee the same, for its synchronous and its asyncio emitter.
"""

from __future__ import annotations

from typing import Any

from .._extras import missing_extra

try:
    from pyee import EventEmitter
    from pyee.asyncio import AsyncIOEventEmitter
except ImportError as error:
    raise missing_extra(__name__, "pyee", extra="pyee") from error

from .._resource import AsyncResource
from .._validation import describe
from ..errors import InvalidArgTypeError

__all__ = [
    "AsyncIOEventEmitterAsyncResource",
    "EventEmitterAsyncResource",
    "EventEmitterReferencingAsyncResource",
]


class EventEmitterReferencingAsyncResource(AsyncResource):
    """The resource owned by an emitter; ``event_emitter`` leads back to it (as in Node)."""

    __slots__ = ("_event_emitter",)

    def __init__(
        self,
        emitter: EventEmitter,
        type: str,
        trigger_async_id: int | None = None,
        *,
        require_manual_destroy: bool = False,
    ) -> None:
        super().__init__(type, trigger_async_id, require_manual_destroy=require_manual_destroy)
        self._event_emitter = emitter

    @property
    def event_emitter(self) -> EventEmitter:
        """The emitter this resource belongs to."""
        return self._event_emitter


class EventEmitterAsyncResource(EventEmitter):
    """A pyee ``EventEmitter`` whose listeners run in its creation context.

    ``name`` is the resource type lifecycle hooks see; by default the class
    name, so that ``class Query(EventEmitterAsyncResource)`` reports
    ``"Query"``, as Node's ``new.target.name``. ``trigger_async_id`` and
    ``require_manual_destroy`` are those of :class:`AsyncResource`.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        trigger_async_id: int | None = None,
        require_manual_destroy: bool = False,
        **emitter_options: Any,
    ) -> None:
        if name is None:
            name = type(self).__name__
        elif not isinstance(name, str):
            raise InvalidArgTypeError(
                f'The "name" argument must be of type str. Received {describe(name)}'
            )
        super().__init__(**emitter_options)
        self._async_resource = EventEmitterReferencingAsyncResource(
            self, name, trigger_async_id, require_manual_destroy=require_manual_destroy
        )
        # pyee's own emit, bound once to the resource's scope: emit is a hot path.
        self._emit_in_scope = self._async_resource.bind(super().emit)

    def emit(self, event: str, *args: Any, **kwargs: Any) -> bool:
        """Call the listeners of ``event`` inside the emitter's resource scope."""
        return self._emit_in_scope(event, *args, **kwargs)

    @property
    def async_resource(self) -> EventEmitterReferencingAsyncResource:
        """The emitter's AsyncResource (Node's ``asyncResource``)."""
        return self._async_resource

    @property
    def async_id(self) -> int:
        """The resource's async id (a property, as Node's ``asyncId`` getter)."""
        return self._async_resource.async_id()

    @property
    def trigger_async_id(self) -> int:
        """The resource's trigger async id (Node's ``triggerAsyncId`` getter)."""
        return self._async_resource.trigger_async_id()

    def emit_destroy(self) -> None:
        """Emit ``destroy`` for the emitter's resource; a second call raises."""
        self._async_resource.emit_destroy()


class AsyncIOEventEmitterAsyncResource(EventEmitterAsyncResource, AsyncIOEventEmitter):
    """pyee's ``AsyncIOEventEmitter`` with listeners in its creation context.

    Coroutine listeners become tasks created inside the resource scope, so
    the whole coroutine, not only its first step, sees the creation stores.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        loop: Any = None,
        trigger_async_id: int | None = None,
        require_manual_destroy: bool = False,
    ) -> None:
        super().__init__(
            name,
            trigger_async_id=trigger_async_id,
            require_manual_destroy=require_manual_destroy,
            loop=loop,
        )
