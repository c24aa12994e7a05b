"""Servers and transports: real ones on 127.0.0.1, tracked on both loops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from async_hooks import (
    execution_async_id,
    execution_async_resource,
    get_active_resources_info,
    trigger_async_id,
)
from async_hooks.lowlevel import flush_pending_destroys

from .conftest import Recorder, RunAsync, check_invariants


def test_server_connections_and_handler_form_a_chain(
    run_async: RunAsync, recorder: Recorder, loop_name: str
) -> None:
    seen: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["handler"] = (asyncio.current_task(), trigger_async_id())
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        seen["server"] = server
        port = server.sockets[0].getsockname()[1]
        seen["client_creator"] = execution_async_id()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        seen["client_transport"] = writer.transport
        writer.write(b"hello\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"HELLO\n"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run_async(main)
    server_id = recorder.id_of(seen["server"])
    assert recorder.inits[server_id].type == "Server"
    transports = [e for e in recorder.inits.values() if "Transport" in e.type]
    assert len(transports) == 2
    client = recorder.inits[recorder.id_of(seen["client_transport"])]
    assert client.trigger_async_id == seen["client_creator"]
    (server_side,) = [e for e in transports if e is not client]
    assert server_side.trigger_async_id == server_id
    # The handler task was created by the connection, inside its callback.
    handler_task, handler_trigger = seen["handler"]
    assert handler_trigger == server_side.async_id
    assert recorder.inits[recorder.id_of(handler_task)].trigger_async_id == server_side.async_id
    for transport in transports:
        names = recorder.of(transport.async_id)
        assert names[:2] == ["init", "before"]
        assert names[-1] == "destroy"
        assert names.count("before") == names.count("after") >= 2
    # uvloop's Server is a C type with no close to wrap: its destroy comes
    # the loop iteration after close(), when uvloop lets go of the factory,
    # while the test still holds the server.
    assert seen["server"] is not None
    assert recorder.of(server_id)[-1] == "destroy"
    check_invariants(recorder.events)


def test_protocol_callbacks_run_with_the_transports_ids(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: list[tuple[int, object]] = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            seen.append((execution_async_id(), execution_async_resource()))
            self.transport.write(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run_async(main)
    ((async_id, resource),) = seen
    assert recorder.inits[async_id].resource is resource
    assert "Transport" in recorder.inits[async_id].type


def test_open_servers_and_transports_are_active(run_async: RunAsync, recorder: Recorder) -> None:
    async def close_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async def main() -> tuple[list[str], list[str]]:
        server = await asyncio.start_server(close_at_eof, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.01)
        busy = get_active_resources_info()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        for _ in range(100):  # the server side closes once it saw the EOF
            if not any("Transport" in name for name in get_active_resources_info()):
                break
            await asyncio.sleep(0.01)
        return busy, get_active_resources_info()

    busy, after = run_async(main)
    assert "Server" in busy
    assert sum("Transport" in name for name in busy) >= 1
    assert "Server" not in after
    assert not any("Transport" in name for name in after)


def test_a_datagram_endpoint_is_a_transport_with_a_step_per_datagram(
    run_async: RunAsync, recorder: Recorder
) -> None:
    seen: dict[str, Any] = {}

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            seen["ids"] = (execution_async_id(), execution_async_resource())
            self.transport.sendto(data.upper(), addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.reply.set_result(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen["creator"] = execution_async_id()
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        seen["server"] = server
        address = server.get_extra_info("sockname")
        client, protocol = await loop.create_datagram_endpoint(Client, remote_addr=address)
        try:
            client.sendto(b"ping")
            assert await asyncio.wait_for(protocol.reply, 5) == b"PING"
        finally:
            client.close()
            server.close()
        for _ in range(3):
            await asyncio.sleep(0)

    run_async(main)
    server_id = recorder.id_of(seen["server"])
    assert recorder.inits[server_id].trigger_async_id == seen["creator"]
    assert seen["ids"] == (server_id, seen["server"])
    names = recorder.of(server_id)
    assert names[0] == "init"
    assert names[-1] == "destroy"
    assert names.count("before") == names.count("after") >= 2
    check_invariants(recorder.events)


def test_a_subprocess_and_its_pipes_are_transports_caused_by_the_caller(
    run_async: RunAsync, recorder: Recorder
) -> None:
    import sys

    seen: dict[str, Any] = {}

    async def main() -> None:
        seen["creator"] = execution_async_id()
        pipe = asyncio.subprocess.PIPE
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print(input())", stdin=pipe, stdout=pipe, stderr=pipe
        )
        seen["transport"] = process._transport  # type: ignore[attr-defined]
        out, _ = await process.communicate(b"out\n")
        assert out.strip() == b"out"
        assert await process.wait() == 0
        # Killed while its pipes are open: its pipes end inside its callbacks.
        killed = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(30)", stdout=pipe
        )
        killed.kill()
        assert await killed.wait() != 0
        for _ in range(5):
            await asyncio.sleep(0.01)

    run_async(main)
    process_id = recorder.id_of(seen["transport"])
    assert recorder.inits[process_id].trigger_async_id == seen["creator"]
    names = recorder.of(process_id)
    assert names[0] == "init"
    assert "process_exited" not in names  # the step events only
    assert names[-1] == "destroy"
    assert names.count("before") == names.count("after") >= 2
    check_invariants(recorder.events)


def test_pipes_are_transports(run_async: RunAsync, recorder: Recorder) -> None:
    import os

    seen: dict[str, Any] = {}

    class Sink(asyncio.Protocol):  # with a __dict__, unlike asyncio's base classes
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        reader = asyncio.StreamReader()
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb")
        )
        write_transport, _ = await loop.connect_write_pipe(Sink, os.fdopen(write_fd, "wb"))
        seen["transports"] = (read_transport, write_transport)
        write_transport.write(b"line\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"line\n"
        write_transport.close()
        assert await reader.read() == b""
        read_transport.close()
        for _ in range(3):
            await asyncio.sleep(0)

    run_async(main)
    for transport in seen["transports"]:
        names = recorder.of(recorder.id_of(transport))
        assert names[:2] == ["init", "before"]
        assert names[-1] == "destroy"
    check_invariants(recorder.events)


def test_tls_connections_and_start_tls_keep_the_lifecycle_rules(run_async: RunAsync) -> None:
    # No recorder: it would keep every resource alive, and the transport that
    # start_tls replaces must be free to go while its callback runs.
    # localhost.pem: a throwaway self-signed certificate, made for these tests.
    import ssl
    from pathlib import Path

    from async_hooks import create_hook
    from async_hooks.lowlevel import EventChecker

    certificate = str(Path(__file__).with_name("localhost.pem"))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    checker = EventChecker()
    hook = create_hook(checker).enable()

    async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        await writer.start_tls(server_context)
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"plain\n")
        assert await reader.readline() == b"plain\n"
        await writer.start_tls(client_context)
        writer.write(b"tls\n")
        assert await reader.readline() == b"TLS\n"
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        tls = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
        reader, writer = await asyncio.open_connection(
            *tls.sockets[0].getsockname()[:2], ssl=client_context
        )
        assert await reader.read() == b""
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        for each in (server, tls):
            each.close()
            await each.wait_closed()

    try:
        run_async(main)
        gc.collect()
        flush_pending_destroys()
    finally:
        hook.disable()
    checker.raise_if_broken()
