"""Threads that start in the context of the code that starts them.

A ``threading.Thread`` on CPython 3.11-3.13 runs in a new, empty context:
every store is lost. :class:`ContextThread` captures the context when
``start()`` is called (as Python 3.14's ``Thread(context=...)`` does when
``sys.flags.thread_inherit_context`` is set), with the stores whose policy
excludes ``Crossing.THREADS`` reset to their default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import Context
from typing import Any

from .. import _thread_start
from .._policy import Crossing, capture_context
from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError


class ContextThread(threading.Thread):
    """A ``threading.Thread`` whose ``run()`` sees the stores of whoever called ``start()``.

    Pass ``context=`` to run in a given ``contextvars.Context`` instead (it
    is used as is, so it must not be entered by another thread at the same
    time). Subclasses that override ``run()`` are covered too.
    """

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        context: Context | None = None,
    ) -> None:
        if context is not None and not isinstance(context, Context):
            raise InvalidArgTypeError(
                'The "context" argument must be a contextvars.Context or None. '
                f"Received {describe(context)}"
            )
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        self._start_context = context

    def start(self) -> None:
        context = self._start_context
        if context is None:
            context = capture_context(Crossing.THREADS)
        # Prepared by the owner of Thread.start, so that a tracked thread's
        # ids are set inside this context; super().start is looked up now, so
        # another library's patch on Thread.start still runs.
        _thread_start.start_in(self, context, super().start)


def start_thread(
    target: Callable[..., object],
    /,
    *args: Any,
    name: str | None = None,
    daemon: bool | None = None,
    **kwargs: Any,
) -> ContextThread:
    """Start ``target(*args, **kwargs)`` in a new thread that carries the caller's stores."""
    require_callable(target, "target")
    thread = ContextThread(target=target, name=name, args=args, kwargs=kwargs, daemon=daemon)
    thread.start()
    return thread
