"""Unhandled errors reported in the context of the work that failed.

An event loop reports what nobody handled (an exception raised by a
``call_soon``/``call_later`` callback, "Task exception was never retrieved")
through its exception handler. Which context that handler runs in depends on
the loop and the version (verified, see docs/propagation-generators-emitters.md): often the
context of whatever code happened to run the garbage collector, so an error
log loses the request's stores, or shows another request's.

Node runs its uncaught-exception handling in the context of the failing
callback. :func:`install_exception_context` gives a loop that rule: its
exception handler (the user's own, chained, or the loop's default one, which
logs) runs in a copy of the failing task's or callback's context.
:func:`with_exception_context` makes a loop factory that installs it on
every new loop; :func:`in_failure_context` does the same for one handler,
and :func:`failure_context` finds that context for handlers that want to
look.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import weakref
from collections.abc import Callable, Coroutine, Generator, Mapping
from contextvars import Context, copy_context
from types import TracebackType
from typing import Any, Self

from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
TaskFactory = Callable[..., "asyncio.Future[Any]"]

# Tasks have no public accessor for their context before 3.12 (get_context).
# There, the factory installed by install_exception_context() creates each
# task's context itself and remembers it here.
_NEEDS_TASK_CONTEXT_RECORDING = sys.version_info < (3, 12)
_recorded_task_contexts: weakref.WeakKeyDictionary[object, Context] = weakref.WeakKeyDictionary()

# The keys of an exception-handler context that name the failing work, most
# precise first. A Task may come as "future": Task is a Future.
_WORK_KEYS = ("task", "future", "handle")


def failure_context(context: Mapping[str, object]) -> Context | None:
    """The context of the task or callback that an exception-handler context describes.

    ``context`` is the dict an event loop passes to its exception handler.
    Returns None when the failing work carries no context (a bare Future),
    or when the loop gives no way to reach it.
    """
    if not isinstance(context, Mapping):
        raise InvalidArgTypeError(
            f'The "context" argument must be a mapping. Received {describe(context)}'
        )
    for key in _WORK_KEYS:
        work = context.get(key)
        if work is not None:
            found = _context_of(work)
            if found is not None:
                return found
    return None


def _context_of(work: object) -> Context | None:
    # Tasks and stdlib handles since 3.12.
    get_context = getattr(work, "get_context", None)
    if get_context is not None:
        found = get_context()
        if isinstance(found, Context):
            return found
    # Stdlib handles on 3.11 (and the pure-Python Task) keep it here.
    found = getattr(work, "_context", None)
    if isinstance(found, Context):
        return found
    try:
        return _recorded_task_contexts.get(work)
    except TypeError:  # not weak-referenceable: never recorded
        return None


def in_failure_context(handler: ExceptionHandler) -> ExceptionHandler:
    """Wrap an exception handler so it runs in the failing work's context.

    Each call runs in a fresh copy of that context, so the handler may
    enter stores without touching the failed task's own context; where the
    failing work has no context, the handler runs where it was called.
    """
    require_callable(handler, "handler")

    def handle_in_failure_context(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        found = failure_context(context)
        if found is None:
            handler(loop, context)
        else:
            found.copy().run(handler, loop, context)

    return handle_in_failure_context


class _ContextExceptionHandler:
    """The handler installed on a loop: forwards to the previous one in the right context."""

    __slots__ = ("active", "previous")

    def __init__(self, previous: ExceptionHandler | None) -> None:
        self.previous = previous
        # Cleared on uninstall when another handler was set on top of this one
        # and may still forward to it: it then only passes calls through.
        self.active = True

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        found = failure_context(context) if self.active else None
        if found is None:
            self._forward(loop, context)
        else:
            found.copy().run(self._forward, loop, context)

    def _forward(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if self.previous is None:
            loop.default_exception_handler(context)
        else:
            self.previous(loop, context)


class _RecordingTaskFactory:
    """Before 3.12: a task factory that records the context each task runs in.

    It creates the context itself and passes it to the task, or to the
    factory it chains if that one accepts ``context=``. A factory written
    for the two-argument call ``factory(loop, coro)`` (which is how the
    stdlib loop calls a factory when ``create_task`` got no context) is
    still called that way; its task then makes its own context, which 3.11
    does not show, so what is recorded is a copy taken at the same moment:
    the stores as they were when the task was created.
    """

    __slots__ = ("active", "passes_context", "previous")

    def __init__(self, previous: TaskFactory | None) -> None:
        self.previous = previous
        self.passes_context = previous is None or _accepts_context(previous)
        self.active = True

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        if not self.active:
            return self._create(loop, coro, kwargs)
        context = kwargs.get("context")
        if context is None:
            context = copy_context()
            if self.passes_context:
                kwargs["context"] = context
        task = self._create(loop, coro, kwargs)
        _recorded_task_contexts[task] = context
        return task

    def _create(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Any,  # whatever the loop was given: typeshed's type differs per version
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        if self.previous is None:
            return asyncio.Task(coro, loop=loop, **kwargs)
        return self.previous(loop, coro, **kwargs)


def _accepts_context(factory: TaskFactory) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        # No signature to read: the two-argument call is the one every
        # factory supports.
        return False
    return any(
        parameter.kind is parameter.VAR_KEYWORD
        or (parameter.name == "context" and parameter.kind is not parameter.POSITIONAL_ONLY)
        for parameter in parameters
    )


class ExceptionContextInstallation:
    """What :func:`install_exception_context` did to a loop, and how to undo it.

    Usable as a context manager: leaving the block uninstalls.
    """

    __slots__ = ("_factory", "_handler", "_loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: _ContextExceptionHandler,
        factory: _RecordingTaskFactory | None,
    ) -> None:
        self._loop = loop
        self._handler: _ContextExceptionHandler | None = handler
        self._factory = factory

    @property
    def installed(self) -> bool:
        """True until :meth:`uninstall` is called."""
        return self._handler is not None

    def uninstall(self) -> None:
        """Put back the loop's previous exception handler (and task factory).

        If someone else has set their own handler or factory on top of ours
        since, theirs is left in place and ours is turned into a plain
        pass-through, so a chain they built keeps working. Calling it twice
        does nothing the second time.
        """
        handler, self._handler = self._handler, None
        if handler is None:
            return
        loop = self._loop
        if loop.get_exception_handler() is handler:
            loop.set_exception_handler(handler.previous)
        else:
            handler.active = False
        factory = self._factory
        self._factory = None
        if factory is not None:
            previous_factory = factory.previous
            if loop.get_task_factory() is factory:
                loop.set_task_factory(previous_factory)
            else:
                factory.active = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()


def install_exception_context(
    loop: asyncio.AbstractEventLoop | None = None,
) -> ExceptionContextInstallation:
    """Make ``loop``'s exception handler run in the failing work's context.

    ``loop`` defaults to the running loop. The handler in place (the user's
    own, or none: the loop's default, which logs) is chained, not replaced:
    it still handles every error, now inside a copy of the context of the
    task or callback that failed, so a logging filter reading a store sees
    the failing request's. On Python 3.11, which has no ``Task.get_context``,
    a task factory that records each task's context is installed as well,
    chaining the factory in place with the signature it has (``(loop,
    coro)`` or with ``context=``). Returns the installation; call its
    ``uninstall()`` (or use it as a context manager) to undo.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise InvalidArgTypeError(
            f'The "loop" argument must be an asyncio event loop. Received {describe(loop)}'
        )
    handler = _ContextExceptionHandler(loop.get_exception_handler())
    factory: _RecordingTaskFactory | None = None
    if _NEEDS_TASK_CONTEXT_RECORDING:
        factory = _RecordingTaskFactory(loop.get_task_factory())
        loop.set_task_factory(factory)
    loop.set_exception_handler(handler)
    return ExceptionContextInstallation(loop, handler, factory)


def with_exception_context(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory whose loops have :func:`install_exception_context` applied.

    For ``asyncio.Runner(loop_factory=...)`` and ``asyncio.run(...,
    loop_factory=...)`` (3.12+): the installation is in place before the
    first task exists, so on 3.11 the main task's context is recorded too.
    """
    require_callable(loop_factory, "loop_factory")

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = loop_factory()
        install_exception_context(loop)
        return loop

    return new_loop
