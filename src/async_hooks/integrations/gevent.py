"""Greenlets and gevent greenlets that start in their spawner's context
(optional extra ``async-hooks[gevent]``).

A greenlet has a context of its own (``gr_context``), and a new one starts
with an *empty* context: ``greenlet.greenlet(fn)`` and ``gevent.spawn(fn)``
both lose every store of the code that spawned them (verified with greenlet
3 and gevent 24+, see docs/propagation-generators-emitters.md). The helpers here give each
new greenlet a copy of the spawner's context, captured per spawn: the
greenlet sees the spawner's stores, what it enters stays its own, and two
greenlets never see each other's values however they switch.

A greenlet is a thread of execution of its own, so the stores' policy for
``Crossing.THREADS`` applies: a store declared ``crosses=Crossing.NONE``
reads as its default in the new greenlet, as it would in a new thread.

Nothing here monkey-patches anything; the helpers work the same with or
without ``gevent.monkey.patch_all()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._extras import missing_extra

try:
    # Neither library ships type information: both are Any to the checker.
    # The gevent extra brings both (gevent itself requires greenlet).
    import gevent  # type: ignore[import-untyped]
    from greenlet import greenlet  # type: ignore[import-untyped]
except ImportError as error:
    raise missing_extra(__name__, "gevent", extra="gevent") from error

from .._policy import Crossing, capture_context
from .._validation import require_callable

__all__ = ["ContextGreenlet", "greenlet_in_context", "spawn", "spawn_later"]


def greenlet_in_context(run: Callable[..., Any], parent: greenlet | None = None) -> greenlet:
    """A new (not yet started) greenlet that runs ``run`` in a copy of the current context.

    The copy follows the stores' policy for ``Crossing.THREADS``.

    Start it as any greenlet, with ``switch(*args, **kwargs)``.
    """
    require_callable(run, "run")
    child = greenlet(run, parent) if parent is not None else greenlet(run)
    child.gr_context = capture_context(Crossing.THREADS)
    return child


class ContextGreenlet(gevent.Greenlet):  # type: ignore[misc]  # gevent ships no types
    """A gevent ``Greenlet`` that runs in a copy of the context it was created in.

    Use it wherever gevent takes a greenlet class:
    ``gevent.pool.Pool(size, greenlet_class=ContextGreenlet)`` captures the
    context of each ``pool.spawn`` call, never the pool's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gr_context = capture_context(Crossing.THREADS)


def spawn(run: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ContextGreenlet:
    """``gevent.spawn``, with the greenlet in a copy of the spawner's context."""
    require_callable(run, "run")
    return ContextGreenlet.spawn(run, *args, **kwargs)  # type: ignore[no-any-return]


def spawn_later(
    seconds: float, run: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> ContextGreenlet:
    """``gevent.spawn_later``, with the context captured now, not when it starts."""
    require_callable(run, "run")
    return ContextGreenlet.spawn_later(seconds, run, *args, **kwargs)  # type: ignore[no-any-return]
