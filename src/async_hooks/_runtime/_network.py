"""Lifecycle events for servers and transports: streams, datagrams, pipes, subprocesses.

Neither asyncio nor uvloop lets anyone see a transport being born, but both
hand every connection to a protocol made by the caller's factory. So:

* ``create_server``/``create_unix_server`` get a factory that watches the
  protocols it makes; the server gets ``init`` (type: its class name) once
  it exists, *before* it starts accepting, and ``destroy`` when closed
  (stdlib; on uvloop, whose Server is a C type, when it is collected);
* each connection's transport gets ``init`` from its protocol's
  ``connection_made`` (trigger: the server, or the code that called
  ``create_connection``), ``before``/``after`` around every protocol
  callback, run with the transport's ids, and ``destroy`` after
  ``connection_lost``. The same for every other loop method that makes a
  transport for a protocol of the caller's factory: datagram endpoints,
  ``connect_accepted_socket``, pipes and subprocesses (whose stdio pipes,
  connected by asyncio through the same methods, are transports of their
  own, triggered by the subprocess's caller).

The protocol's callbacks are watched through instance attributes set right
after the factory returned it (before the loop reads them), and removed
after ``connection_lost``: the protocol object is the user's own, unchanged.
A protocol without a ``__dict__`` (``__slots__``) is left untracked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from .. import _hooks
from .._accelerator import speedups
from .._execution import ExecutionFrame, current_frame
from .._patching import Patches
from ._asyncio import loop_classes
from ._live import TrackedResource, finish, forget, live_resources, run_as, track

_patches = Patches()

# Every callback asyncio and uvloop may call on a protocol: streams,
# buffered streams, datagrams, pipes and subprocesses.
_PROTOCOL_CALLBACKS = (
    "connection_made",
    "data_received",
    "eof_received",
    "get_buffer",
    "buffer_updated",
    "pause_writing",
    "resume_writing",
    "datagram_received",
    "error_received",
    "pipe_data_received",
    "pipe_connection_lost",
    "process_exited",
    "connection_lost",
)

# The loop methods that make a transport for a protocol of the caller's
# factory (passed first), besides servers.
_CONNECTING_METHODS = (
    "create_connection",
    "create_unix_connection",
    "create_datagram_endpoint",
    "connect_accepted_socket",
    "connect_read_pipe",
    "connect_write_pipe",
    "subprocess_exec",
    "subprocess_shell",
)

# The records of open stdlib servers, by id() (a Server stays as asyncio made it).
_servers: dict[int, TrackedResource] = {}


class _ConnectionTracking:
    """One protocol's connection: the transport's record once it is known."""

    __slots__ = ("origin", "protocol", "record")

    def __init__(self, protocol: object, origin: ExecutionFrame) -> None:
        self.protocol = protocol
        # The frame of whoever caused the connection: the server, or the
        # scope that called create_connection.
        self.origin = origin
        self.record: TrackedResource | None = None

    def connected(self, transport: object) -> None:
        token = current_frame.set(self.origin)
        try:
            record = track()
        finally:
            current_frame.reset(token)
        record.context = copy_context()
        record.repeats = True  # until connection_lost
        self.record = record
        record.attach(transport)

    def lost(self) -> None:
        for name in _PROTOCOL_CALLBACKS:
            vars(self.protocol).pop(name, None)
        if self.record is not None:
            finish(self.record)


def _run_protocol_callback(callback: _ProtocolCallback, *args: Any) -> Any:
    """What calling ``callback`` does (the compiled twin does only the common case)."""
    tracking = callback.tracking
    if callback.name == "connection_made" and tracking.record is None and _hooks.enabled.hooks:
        tracking.connected(args[0])
    record = tracking.record
    if record is None:
        return callback.method(*args)
    if record.async_id not in live_resources:
        # It ended (or its transport was collected) while the protocol
        # lives on, and someone kept this method (asyncio's SSL protocol
        # keeps the app protocol's): nothing is left to report it as.
        tracking.lost()
        return callback.method(*args)
    try:
        return run_as(record, callback.method, *args)
    finally:
        if callback.name == "connection_lost":
            record.repeats = False
        # Ended during this run (connection_lost, or its transport was
        # collected): finished once the outermost of its callbacks returns.
        if not record.repeats and current_frame.get() is not record:
            tracking.lost()


if TYPE_CHECKING or speedups is None:

    class _ProtocolCallback:
        """One protocol method, run between its transport's ``before`` and ``after``."""

        __slots__ = ("method", "name", "tracking")

        def __init__(
            self, tracking: _ConnectionTracking, name: str, method: Callable[..., Any]
        ) -> None:
            self.tracking = tracking
            self.name = name
            self.method = method

        def __call__(self, *args: Any) -> Any:
            return _run_protocol_callback(self, *args)

else:
    # The same, compiled: every chunk a connection receives goes through it.
    _ProtocolCallback = speedups.ProtocolCallback
    speedups.configure_network(run_protocol_callback=_run_protocol_callback)


def _watch(protocol: object, origin: ExecutionFrame) -> None:
    try:
        attributes = vars(protocol)
    except TypeError:
        return  # __slots__: nowhere to put the watchers
    tracking = _ConnectionTracking(protocol, origin)
    for name in _PROTOCOL_CALLBACKS:
        method = getattr(protocol, name, None)
        if callable(method):
            attributes[name] = _ProtocolCallback(tracking, name, method)


class _WatchingFactory:
    """The protocol factory given to the loop: the user's, plus the watchers."""

    __slots__ = ("__weakref__", "factory", "origin")

    def __init__(self, factory: Callable[[], Any], origin: ExecutionFrame) -> None:
        self.factory = factory
        self.origin = origin

    def __call__(self) -> Any:
        protocol = self.factory()
        if _hooks.enabled.hooks:
            _watch(protocol, self.origin)
        return protocol


def _tracked_create_server(original: Callable[..., Any]) -> Callable[..., Any]:
    async def create_server(
        self: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], Any],
        *args: Any,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> Any:
        if not _hooks.enabled.hooks or not callable(protocol_factory):
            return await original(
                self, protocol_factory, *args, start_serving=start_serving, **kwargs
            )
        record = track()
        record.context = copy_context()
        factory = _WatchingFactory(protocol_factory, record)
        try:
            # Not serving yet: the server's init must come before any connection's.
            server = await original(self, factory, *args, start_serving=False, **kwargs)
        except BaseException:
            forget(record)
            raise
        record.attach(server)
        if isinstance(server, asyncio.base_events.Server):
            # Its close() emits the destroy.
            record.file(_servers, server)
        else:
            # uvloop's C Server has no close to wrap, but it lets go of the
            # factory once its listening handles are closed (the loop
            # iteration after close()): that ends it.
            record.watch(factory)
        if start_serving:
            await server.start_serving()
        return server

    return create_server


def _tracked_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    async def connect(
        self: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if not _hooks.enabled.hooks or not callable(protocol_factory):
            return await original(self, protocol_factory, *args, **kwargs)
        factory = _WatchingFactory(protocol_factory, current_frame.get())
        return await original(self, factory, *args, **kwargs)

    return connect


def _tracked_server_close(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def close(self: Any) -> None:
        original(self)
        record = _servers.get(id(self))
        if record is not None:
            finish(record)

    return close


def patch_network() -> None:
    if _patches:
        return
    for cls in loop_classes():
        _patches.apply(cls, "create_server", _tracked_create_server)
        if hasattr(cls, "create_unix_server"):
            _patches.apply(cls, "create_unix_server", _tracked_create_server)
        for name in _CONNECTING_METHODS:
            if hasattr(cls, name):
                _patches.apply(cls, name, _tracked_connect)
    _patches.apply(asyncio.base_events.Server, "close", _tracked_server_close)


def unpatch_network() -> None:
    _patches.restore_all()
