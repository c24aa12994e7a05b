"""pyee: listeners run in the emitting code's context by default (Node's
EventEmitter), and in the emitter's creation context with
EventEmitterAsyncResource (Node's EventEmitterAsyncResource)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pyee import EventEmitter

from async_hooks import AsyncLocalStorage, AsyncResource, create_hook, execution_async_id
from async_hooks.errors import InvalidArgTypeError, ResourceDestroyedError
from async_hooks.integrations.pyee import (
    AsyncIOEventEmitterAsyncResource,
    EventEmitterAsyncResource,
)
from tests.conftest import RunAsync

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="request")


# -- pyee: the default, as Node's EventEmitter -------------------------------------


def test_plain_pyee_listeners_run_in_the_emitting_codes_context() -> None:
    seen: list[str | None] = []
    emitter = request.run("creation", EventEmitter)
    emitter.on("event", lambda: seen.append(request.get_store()))
    request.run("first emit", emitter.emit, "event")
    request.run("second emit", emitter.emit, "event")
    assert seen == ["first emit", "second emit"]


def test_plain_pyee_store_entered_by_a_listener_reaches_the_next_and_the_emitter() -> None:
    # Node documents this very example for enterWith inside a listener.
    emitter = EventEmitter()
    seen: list[str | None] = []
    emitter.on("event", lambda: request.enter_with("entered by the first listener"))
    emitter.on("event", lambda: seen.append(request.get_store()))

    def emitting_code() -> str | None:
        emitter.emit("event")
        return request.get_store()

    assert request.run("emitter", emitting_code) == "entered by the first listener"
    assert seen == ["entered by the first listener"]


def test_plain_pyee_listener_bound_with_async_resource_keeps_the_registering_context() -> None:
    # Node's "Integrating AsyncResource with EventEmitter": bind one listener.
    seen: list[tuple[str, str | None]] = []
    emitter = EventEmitter()

    def register() -> None:
        emitter.on("close", AsyncResource.bind(lambda: seen.append(("bound", request.get_store()))))
        emitter.on("close", lambda: seen.append(("plain", request.get_store())))

    request.run("registering request", register)
    request.run("closing code", emitter.emit, "close")
    assert seen == [("bound", "registering request"), ("plain", "closing code")]


# -- pyee: EventEmitterAsyncResource ---------------------------------------------------


def test_async_resource_emitter_runs_listeners_in_its_creation_context() -> None:
    seen: list[str | None] = []
    emitter = request.run("creation", EventEmitterAsyncResource, "Query")
    emitter.on("event", lambda: seen.append(request.get_store()))
    emitter.on("event", lambda: request.enter_with("entered by a listener"))

    def emitting_code() -> str | None:
        emitter.emit("event")
        emitter.emit("event")  # a new emit does not see the previous one's change
        return request.get_store()

    assert request.run("emit", emitting_code) == "emit"
    assert seen == ["creation", "creation"]


def test_async_resource_emitter_ids_and_resource() -> None:
    inside: list[tuple[int, object]] = []

    class Query(EventEmitterAsyncResource):
        pass

    creator_id = execution_async_id()
    query = Query()
    query.on("event", lambda: inside.append((execution_async_id(), query.async_resource)))
    assert query.emit("event") is True
    assert query.emit("unheard") is False
    assert query.trigger_async_id == creator_id
    assert query.async_resource.event_emitter is query
    assert query.async_resource.type == "Query"
    assert inside == [(query.async_id, query.async_resource)]
    assert execution_async_id() == creator_id


def test_async_resource_emitter_lifecycle_events() -> None:
    events: list[tuple[str, ...]] = []
    tracked: set[int] = set()

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type in ("Foo", "ResourceName"):
            tracked.add(async_id)
            events.append(("init", type, str(trigger_async_id)))

    def log(name: str) -> Callable[[int], None]:
        def record(async_id: int) -> None:
            if async_id in tracked:
                events.append((name,))

        return record

    class Foo(EventEmitterAsyncResource):
        pass

    hook = create_hook(
        init=init, before=log("before"), after=log("after"), destroy=log("destroy")
    ).enable()
    try:
        origin = execution_async_id()
        foo = Foo()
        foo.on("someEvent", lambda: None)
        foo.emit("someEvent")
        foo.emit_destroy()
        named = Foo("ResourceName", require_manual_destroy=True)
    finally:
        hook.disable()
    assert events == [
        ("init", "Foo", str(origin)),
        ("before",),  # pyee emits "new_listener" from on(): an emit like any other
        ("after",),
        ("before",),
        ("after",),
        ("destroy",),
        ("init", "ResourceName", str(origin)),
    ]
    assert named.async_resource.type == "ResourceName"
    with pytest.raises(ResourceDestroyedError):
        foo.emit_destroy()


def test_async_resource_emitter_error_event_propagates_and_restores_context() -> None:
    emitter = request.run("creation", EventEmitterAsyncResource, "Failing")

    def failing_listener() -> None:
        request.enter_with("inside")
        raise KeyError("listener failed")

    emitter.on("event", failing_listener)
    request.enter_with("caller")
    try:
        with pytest.raises(KeyError, match="listener failed"):
            emitter.emit("event")
        with pytest.raises(ValueError, match="unhandled"):
            emitter.emit("error", ValueError("unhandled"))  # pyee raises an unheard error
        assert request.get_store() == "caller"
    finally:
        request.enter_with(None)


def test_async_resource_emitter_rejects_a_bad_name() -> None:
    with pytest.raises(InvalidArgTypeError, match='"name" argument must be of type str'):
        EventEmitterAsyncResource(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid name") as error:
        EventEmitterAsyncResource("")
    assert getattr(error.value, "code", None) == "ERR_ASYNC_TYPE"


def test_asyncio_emitter_coroutine_listeners_keep_the_creation_context(
    run_async: RunAsync[None],
) -> None:
    async def main() -> None:
        seen: list[tuple[str, str | None]] = []
        done = asyncio.Event()

        async def listener(tag: str) -> None:
            seen.append((tag, request.get_store()))
            await asyncio.sleep(0)
            seen.append((tag, request.get_store()))
            if len(seen) == 4:
                done.set()

        plain = request.run("creation", lambda: AsyncIOEventEmitterAsyncResource("Plain"))
        plain.on("event", listener)

        async def emit_from(store: str, tag: str) -> None:
            request.enter_with(store)
            plain.emit("event", tag)

        await asyncio.gather(emit_from("request-1", "a"), emit_from("request-2", "b"))
        await asyncio.wait_for(done.wait(), 5)
        assert sorted(seen) == [("a", "creation")] * 2 + [("b", "creation")] * 2

    run_async(main)


def test_asyncio_emitter_reports_a_failing_coroutine_listener_in_its_scope(
    run_async: RunAsync[None],
) -> None:
    async def main() -> None:
        errors: list[tuple[str, str | None]] = []
        reported = asyncio.Event()
        emitter = request.run("creation", lambda: AsyncIOEventEmitterAsyncResource("Failing"))

        async def failing_listener() -> None:
            await asyncio.sleep(0)
            raise KeyError("listener failed")

        def on_error(error: BaseException) -> None:
            errors.append((repr(error), request.get_store()))
            reported.set()

        emitter.on("event", failing_listener)
        emitter.on("error", on_error)
        request.run("emitting request", emitter.emit, "event")
        await asyncio.wait_for(reported.wait(), 5)
        assert errors == [("KeyError('listener failed')", "creation")]

    run_async(main)


def test_asyncio_emitter_default_follows_the_emitting_task(run_async: RunAsync[None]) -> None:
    from pyee.asyncio import AsyncIOEventEmitter

    async def main() -> None:
        seen: list[str] = []
        emitter = request.run("creation", AsyncIOEventEmitter)

        async def listener() -> None:
            await asyncio.sleep(0)
            seen.append(str(request.get_store()))

        emitter.on("event", listener)

        async def emit_from(store: str) -> None:
            request.enter_with(store)
            emitter.emit("event")
            await asyncio.sleep(0.01)

        await asyncio.gather(emit_from("request-1"), emit_from("request-2"))
        assert sorted(seen) == ["request-1", "request-2"]

    run_async(main)
