"""Context for blinker receivers (optional extra ``async-hooks[blinker]``).

By default a blinker signal calls its receivers in the context of the code
that sends it, as Node's ``EventEmitter`` does: a receiver sees the sender's
stores, and a store a receiver enters reaches the other receivers and the
sender. :func:`connect_in_context` connects a receiver with one of two other
choices:

* ``context="connect"``: the receiver runs in the context of the code that
  connected it (Node's ``AsyncResource.bind`` applied to a listener), in a
  fresh copy at each call;
* ``context="send"``: the receiver sees the sender's stores, in a fresh copy
  at each call, so what it enters stays inside it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from contextvars import copy_context
from typing import Any, Literal

from .._extras import missing_extra

try:
    from blinker import ANY, Signal
except ImportError as error:
    raise missing_extra(__name__, "blinker", extra="blinker") from error

from .._coroutines import bind_if_coroutine
from .._resource import AsyncResource
from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError, InvalidArgValueError

__all__ = ["RECEIVER_RESOURCE_TYPE", "connect_in_context"]

# The type of the AsyncResource behind a receiver bound with context="connect".
RECEIVER_RESOURCE_TYPE = "BlinkerReceiver"

_ContextChoice = Literal["connect", "send"]
_CHOICES = ("connect", "send")


def connect_in_context(
    signal: Signal,
    receiver: Callable[..., Any],
    *,
    sender: Any = ANY,
    context: _ContextChoice = "connect",
) -> Callable[..., Any]:
    """Connect ``receiver`` to ``signal`` so that it runs in the chosen context.

    Returns the callable actually connected; pass it to
    ``signal.disconnect`` to disconnect. It is connected strongly (blinker's
    ``weak=False``): a weak reference to a wrapper made here would die at
    once. An ``async def`` receiver stays a coroutine function, so
    ``signal.send_async`` awaits it as it would the original.
    """
    if not isinstance(signal, Signal):
        raise InvalidArgTypeError(
            f'The "signal" argument must be a blinker Signal. Received {describe(signal)}'
        )
    require_callable(receiver, "receiver")
    if context not in _CHOICES:
        raise InvalidArgValueError(
            f'The "context" argument must be "connect" or "send". Received {context!r}'
        )
    if context == "connect":
        call = AsyncResource(RECEIVER_RESOURCE_TYPE).bind(receiver)
    else:
        call = _in_copy_of_current_context(receiver)
    if inspect.iscoroutinefunction(receiver):
        call = _as_coroutine_function(call)
    bound = functools.update_wrapper(call, receiver)
    signal.connect(bound, sender=sender, weak=False)
    return bound


def _in_copy_of_current_context(receiver: Callable[..., Any]) -> Callable[..., Any]:
    def in_copy(*args: Any, **kwargs: Any) -> Any:
        context = copy_context()
        return bind_if_coroutine(context.run(receiver, *args, **kwargs), context)

    return in_copy


def _as_coroutine_function(call: Callable[..., Any]) -> Callable[..., Any]:
    # blinker tells async receivers apart with iscoroutinefunction, so the
    # receiver it is given must be an `async def` too. ``call`` returns a
    # coroutine already bound to the chosen context; this awaits it.
    async def awaiting(*args: Any, **kwargs: Any) -> Any:
        awaitable: Coroutine[Any, Any, Any] = call(*args, **kwargs)
        return await awaitable

    return awaiting
