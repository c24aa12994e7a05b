"""Dramatiq: declared stores travel with each message and live exactly as long as its processing.

A Dramatiq worker thread processes message after message in one context, so
a ``ContextVar`` set by one actor call is still set when the next message
starts on that thread; and nothing of the sender's context reaches any
worker. ``ContextMiddleware`` closes both gaps:

* when a message is enqueued (``send``, ``send_with_options``, retries,
  pipelines, groups), the stores whose policy includes ``Crossing.REMOTE``
  are serialized into ``message.options``, with the current request id and
  the id of the message being processed here, if any, beside them;
* in the worker, each message is processed in a fresh copy of its worker
  thread's context, with those stores entered around the actor call:
  whatever the actor sets is gone when it returns or raises.

Add it to the broker on both sides (the usual setup module is imported by
the sender and by the ``dramatiq`` command alike)::

    broker = RedisBroker(url=...)
    broker.add_middleware(ContextMiddleware())

For log lines, ``message_id`` and ``parent_message_id`` are stores that hold,
during an actor call, the message's id and the id of the message whose
processing sent it::

    StoreFilter({"request_id": request_id, "message_id": message_id, ...})

Options come from the broker, so they are untrusted: a carrier of the wrong
shape, an unknown store name, a value that does not load or an invalid id
each give a ``StoreSerializationWarning`` and are skipped; the message is
processed regardless.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from contextvars import ContextVar, copy_context
from typing import Any

from .._extras import missing_extra

try:
    import dramatiq
    from dramatiq.middleware import MiddlewareError
except ImportError as error:
    raise missing_extra(__name__, "dramatiq", extra="dramatiq") from error

if not hasattr(dramatiq.Middleware, "after_worker_thread_boot"):
    # Added in Dramatiq 1.17; without it a message could not be processed in
    # a context of its own, and bare ContextVars would leak between messages.
    raise ImportError(
        f"{__name__} needs dramatiq 1.17 or later: pip install 'async-hooks[dramatiq]'",
        name="dramatiq",
    )

from .._storage import AsyncLocalStorage
from ..errors import StoreSerializationError
from ._carrier import outgoing_carrier
from ._worker_carrier import REQUEST_ID_KEY, STORES_KEY, accept_carried_id, enter_worker_carrier

__all__ = [
    "PARENT_MESSAGE_ID_OPTION",
    "REQUEST_ID_OPTION",
    "STORES_OPTION",
    "ContextMiddleware",
    "context_options",
    "message_id",
    "parent_message_id",
]

# The message options that carry the context: the names of Celery's headers.
STORES_OPTION = STORES_KEY
REQUEST_ID_OPTION = REQUEST_ID_KEY
PARENT_MESSAGE_ID_OPTION = "async_hooks_parent_message_id"
_OPTIONS = (STORES_OPTION, REQUEST_ID_OPTION, PARENT_MESSAGE_ID_OPTION)

# In-process stores (a message's id is the worker's own knowledge; the
# parent's travels as an option of its own), named under our namespace.
message_id: AsyncLocalStorage[str] = AsyncLocalStorage(name="async_hooks.dramatiq.message_id")
parent_message_id: AsyncLocalStorage[str] = AsyncLocalStorage(
    name="async_hooks.dramatiq.parent_message_id"
)

_PLACE = "Dramatiq message options"

# The message this worker thread is processing, from before_process_message
# to the end of its processing (the after hooks of every middleware included,
# where pipelines and callbacks enqueue the next messages).
_processing: ContextVar[Any] = ContextVar("async_hooks_dramatiq_processing", default=None)
# What before_process_message entered, until after_process_message (or
# after_skip_message) closes it: set only between the two.
_entered: ContextVar[ExitStack | None] = ContextVar("async_hooks_dramatiq_entered", default=None)


class _SendError(StoreSerializationError, MiddlewareError):
    """A ``StoreSerializationError`` that Dramatiq lets through to the sender.

    Dramatiq logs and swallows what a ``before_enqueue`` hook raises, unless
    it is a ``MiddlewareError``; the sender must learn that its stores did
    not serialize, and catches it as ``StoreSerializationError``. It lives
    here rather than in ``errors.py`` because it needs Dramatiq's class, and
    no user names it.
    """


def context_options() -> dict[str, Any]:
    """The ``message.options`` entries that carry the current context to a worker.

    ``{STORES_OPTION: {store name: serialized value}}`` for the stores that
    cross ``Crossing.REMOTE`` and have a value here, ``{REQUEST_ID_OPTION:
    id}`` when a request id is current, and ``{PARENT_MESSAGE_ID_OPTION:
    id}`` inside an actor call; empty when there is nothing to carry. A
    store whose serializer fails raises ``StoreSerializationError`` (or
    warns, per its ``on_serialize_error``).
    """
    # Options are encoded with the message as a whole: the stores go as a dict.
    options: dict[str, Any] = outgoing_carrier(STORES_OPTION, REQUEST_ID_OPTION, dict)
    running = message_id.get_store()
    if running is not None:
        options[PARENT_MESSAGE_ID_OPTION] = running
    return options


class ContextMiddleware(dramatiq.Middleware):
    """Carries declared stores to the worker and isolates the processing of each message."""

    @property
    def actor_options(self) -> set[str]:
        # Declared, so that send_with_options may pass a carrier of its own.
        return set(_OPTIONS)

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        try:
            carried = context_options()
        except StoreSerializationError as error:
            raise _SendError(str(error)) from error.__cause__
        if _entered.get() is None:
            # Outside an actor call while a message is processed: Dramatiq
            # itself sends the next message of a pipeline, a group's
            # callback or a retry, after the actor returned. Those inherit
            # the context the processed message arrived with.
            carried = {**_carrier_of_processed_message(), **carried}
        for key, value in carried.items():
            # What the message already has wins: options the caller passed,
            # and the carrier of a message being retried.
            message.options.setdefault(key, value)

    def after_worker_thread_boot(self, broker: dramatiq.Broker, thread: Any) -> None:
        # Called on the worker thread, before its loop; the loop looks
        # process_message up on the thread for each message. Wrapping it
        # there is what isolates messages: the middleware hooks alone run
        # in the thread's one context and could not undo a bare ContextVar
        # that an actor set.
        thread.process_message = _in_own_context(thread.process_message)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        _processing.set(message)  # lives as long as this processing's context copy
        options = message.options
        run = f"message {message.actor_name}[{message.message_id}]"
        stack = ExitStack()
        try:
            stack.enter_context(message_id.with_scope(message.message_id))
            parent = accept_carried_id(
                options.get(PARENT_MESSAGE_ID_OPTION),
                run=run,
                place=_PLACE,
                what="parent message id",
            )
            stack.enter_context(parent_message_id.with_scope(parent))
            stack.enter_context(
                enter_worker_carrier(
                    options.get(STORES_OPTION),
                    options.get(REQUEST_ID_OPTION),
                    run=run,
                    place=_PLACE,
                )
            )
        except BaseException:
            stack.close()
            raise
        token = _entered.set(stack)
        stack.callback(_entered.reset, token)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        _close_entered()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        _close_entered()


def _close_entered() -> None:
    stack = _entered.get()
    if stack is not None:
        # Resets in the reverse order of entry, _entered itself first.
        stack.close()


def _carrier_of_processed_message() -> dict[str, Any]:
    """Our options of the message this thread is processing, its id as the parent."""
    message = _processing.get()
    if message is None:
        return {}
    options = message.options
    carried = {key: options[key] for key in (STORES_OPTION, REQUEST_ID_OPTION) if key in options}
    carried[PARENT_MESSAGE_ID_OPTION] = message.message_id
    return carried


def _in_own_context(process: Callable[[Any], None]) -> Callable[[Any], None]:
    def process_in_own_context(message: Any) -> None:
        # A fresh copy of the thread's context for each message, so what the
        # processing of one sets never reaches the next.
        copy_context().run(process, message)

    return process_in_own_context
