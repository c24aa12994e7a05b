"""Hooks: create_hook forms and validation, enable/disable, dispatch rules."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextvars import copy_context
from typing import Any

import pytest

from async_hooks import (
    AsyncHook,
    AsyncLocalStorage,
    AsyncResource,
    create_hook,
    execution_async_id,
    execution_async_resource,
)
from async_hooks import _hooks as hooks_module
from async_hooks.errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    InvalidAsyncCallbackError,
)

EVENT_NAMES = ["init", "before", "after", "destroy", "promise_resolve"]

# The three ways to give create_hook its callbacks.
HOOK_FORMS: dict[str, Callable[[dict[str, Any]], AsyncHook]] = {
    "keyword": lambda callbacks: create_hook(**callbacks),
    "mapping": lambda callbacks: create_hook(callbacks),
    "object": lambda callbacks: create_hook(type("Callbacks", (), callbacks)()),
}


@pytest.fixture
def enabled() -> Iterator[list[AsyncHook]]:
    """Hooks a test enables go in this list; every one is disabled afterwards."""
    hooks: list[AsyncHook] = []
    try:
        yield hooks
    finally:
        for hook in hooks:
            hook.disable()


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What reaches sys.unraisablehook during the test."""
    reports: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    return reports


def own_inits(prefix: str, sink: list[Any]) -> Callable[[int, str, int, object], None]:
    """An init callback that records the resources of this test only (type starts with prefix)."""

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type.startswith(prefix):
            sink.append(type)

    return init


# -- create_hook: the forms ------------------------------------------------------------


def test_keyword_form_delivers_each_event(enabled: list[AsyncHook]) -> None:
    seen: list[tuple[str, object]] = []
    ids: set[int] = set()

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestKeyword":
            ids.add(async_id)
            seen.append(("init", (async_id, type, trigger_async_id, resource)))

    def recorder(event: str) -> Callable[[int], None]:
        return lambda async_id: seen.append((event, async_id)) if async_id in ids else None

    hook = create_hook(
        init=init,
        before=recorder("before"),
        after=recorder("after"),
        destroy=recorder("destroy"),
        promise_resolve=recorder("promise_resolve"),
    )
    assert isinstance(hook, AsyncHook)
    enabled.append(hook.enable())
    resource = AsyncResource("TestKeyword")
    async_id = resource.async_id()
    resource.run_in_async_scope(lambda: None)
    hooks_module.emit_promise_resolve(async_id)
    resource.emit_destroy()
    assert seen == [
        ("init", (async_id, "TestKeyword", 1, resource)),
        ("before", async_id),
        ("after", async_id),
        ("promise_resolve", async_id),
        ("destroy", async_id),
    ]


def test_a_new_hook_is_disabled_until_enabled() -> None:
    types: list[str] = []
    hook = create_hook(init=own_inits("TestDisabled", types))
    assert not hook.enabled
    AsyncResource("TestDisabled")
    assert types == []
    assert "disabled" in repr(hook)


def test_mapping_form(enabled: list[AsyncHook]) -> None:
    types: list[str] = []
    enabled.append(create_hook({"init": own_inits("TestMapping", types)}).enable())
    AsyncResource("TestMapping")
    assert types == ["TestMapping"]


def test_object_form_with_methods_including_inherited_ones(enabled: list[AsyncHook]) -> None:
    class Base:
        def __init__(self) -> None:
            self.events: list[tuple[str, int]] = []
            self.ids: set[int] = set()

        def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
            if type == "TestObject":
                self.ids.add(async_id)
                self.events.append(("init", async_id))

    class Watcher(Base):
        def before(self, async_id: int) -> None:
            if async_id in self.ids:
                self.events.append(("before", async_id))

    watcher = Watcher()
    enabled.append(create_hook(watcher).enable())
    resource = AsyncResource("TestObject")
    resource.run_in_async_scope(lambda: None)
    assert watcher.events == [("init", resource.async_id()), ("before", resource.async_id())]


def test_mapping_with_an_unknown_key_is_err_invalid_arg_value() -> None:
    with pytest.raises(InvalidArgValueError, match="'initialize'") as caught:
        create_hook({"initialize": print})
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "ERR_INVALID_ARG_VALUE"


def test_node_s_promise_resolve_name_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidArgValueError, match="promise_resolve") as caught:
        create_hook({"promiseResolve": print})
    assert caught.value.code == "ERR_INVALID_ARG_VALUE"

    class NodeStyle:
        def promiseResolve(self, async_id: int) -> None:
            pass

    with pytest.raises(InvalidArgValueError, match="promise_resolve"):
        create_hook(NodeStyle())


def test_an_object_and_keywords_together_is_a_type_error() -> None:
    with pytest.raises(InvalidArgTypeError) as caught:
        create_hook({"init": print}, before=print)
    assert isinstance(caught.value, TypeError)
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


@pytest.mark.parametrize("event", EVENT_NAMES)
@pytest.mark.parametrize("form", sorted(HOOK_FORMS))
def test_a_callback_that_is_not_callable_is_err_async_callback(event: str, form: str) -> None:
    with pytest.raises(InvalidAsyncCallbackError) as caught:
        HOOK_FORMS[form]({event: "not a function"})
    assert str(caught.value) == f"hook.{event} must be a function"
    assert caught.value.code == "ERR_ASYNC_CALLBACK"
    assert isinstance(caught.value, TypeError)


def test_none_callbacks_mean_absent(enabled: list[AsyncHook]) -> None:
    hook = create_hook({"init": None, "destroy": None})
    enabled.append(hook.enable())
    AsyncResource("TestNone").emit_destroy()
    assert hook.enabled


# -- enable / disable -----------------------------------------------------------------


def test_enable_and_disable_are_idempotent_and_chainable(enabled: list[AsyncHook]) -> None:
    types: list[str] = []
    hook = create_hook(init=own_inits("TestIdempotent", types))
    enabled.append(hook)
    assert hook.enable() is hook
    assert hook.enable().enable() is hook
    AsyncResource("TestIdempotent")
    assert types == ["TestIdempotent"]  # enabled twice, delivered once
    assert hook.disable() is hook
    assert hook.disable().disable() is hook
    AsyncResource("TestIdempotent")
    assert types == ["TestIdempotent"]
    assert hook.disable().enable() is hook
    AsyncResource("TestIdempotent")
    assert types == ["TestIdempotent", "TestIdempotent"]


def test_events_are_delivered_in_enable_order(enabled: list[AsyncHook]) -> None:
    order: list[str] = []

    def named(name: str) -> AsyncHook:
        def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
            if type == "TestOrder":
                order.append(name)

        return create_hook(init=init)

    first, second, third = named("first"), named("second"), named("third")
    enabled.extend([first, second, third])
    second.enable()
    third.enable()
    first.enable()
    AsyncResource("TestOrder")
    assert order == ["second", "third", "first"]
    # Re-enabling after a disable puts a hook at the end, as in Node.
    order.clear()
    second.disable().enable()
    AsyncResource("TestOrder")
    assert order == ["third", "first", "second"]


@pytest.mark.no_hooks
def test_the_first_enable_and_the_last_disable_notify_activation_listeners() -> None:
    assert not hooks_module.enabled.hooks, "a previous test left a hook enabled"
    changes: list[bool] = []
    hooks_module.add_activation_listener(changes.append)
    try:
        one = create_hook(init=lambda *_: None)
        two = create_hook(destroy=lambda _: None)
        one.enable()
        two.enable()
        one.disable()
        assert changes == [True]
        two.disable()
        assert changes == [True, False]
    finally:
        hooks_module.remove_activation_listener(changes.append)


# -- dispatch rules ---------------------------------------------------------------------


def test_a_raising_hook_is_reported_and_breaks_neither_user_code_nor_other_hooks(
    enabled: list[AsyncHook], unraisable: list[Any]
) -> None:
    delivered: list[str] = []
    error = ZeroDivisionError("hook bug")

    def failing_init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestFaulty":
            raise error

    def failing_before(async_id: int) -> None:
        if async_id in ids:
            raise error

    ids: set[int] = set()
    failing = create_hook(init=failing_init, before=failing_before)
    healthy = create_hook(
        init=own_inits("TestFaulty", delivered),
        before=lambda async_id: delivered.append("before") if async_id in ids else None,
    )
    enabled.extend([failing.enable(), healthy.enable()])

    resource = AsyncResource("TestFaulty")
    ids.add(resource.async_id())
    # User code runs and returns normally.
    assert resource.run_in_async_scope(lambda: "user result") == "user result"
    # The hook that raised stays enabled and keeps receiving events.
    assert failing.enabled
    AsyncResource("TestFaulty")
    assert delivered == ["TestFaulty", "before", "TestFaulty"]
    assert len(unraisable) == 3
    report = unraisable[0]
    assert report.exc_type is ZeroDivisionError
    assert report.exc_value is error
    assert "init" in report.err_msg
    assert report.object is failing_init
    assert "before" in unraisable[1].err_msg


def test_a_raising_hook_does_not_corrupt_the_store_or_scope(
    enabled: list[AsyncHook], unraisable: list[Any]
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def failing(async_id: int) -> None:
        als.enter_with("set by the hook")
        raise RuntimeError("after hook bug")

    enabled.append(create_hook(after=failing).enable())
    resource = als.run("creator", AsyncResource, "TestCorrupt")
    assert resource.run_in_async_scope(lambda: (als.get_store(), execution_async_id())) == (
        "creator",
        resource.async_id(),
    )
    assert als.get_store() is None
    assert execution_async_id() == 1
    assert unraisable


def test_hook_callbacks_run_in_a_copy_of_the_context(enabled: list[AsyncHook]) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen_by_hook: list[str | None] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestCopy":
            seen_by_hook.append(als.get_store())
            als.enter_with("entered by the hook")

    enabled.append(create_hook(init=init).enable())

    def program() -> tuple[str | None, str | None]:
        als.enter_with("program")
        resource = AsyncResource("TestCopy")
        AsyncResource("TestCopy")
        return als.get_store(), resource.run_in_async_scope(als.get_store)

    # The hook sees the triggering code's store, but its enter_with reaches
    # neither that code, nor the resource's captured context, nor the next event.
    assert copy_context().run(program) == ("program", "program")
    assert seen_by_hook == ["program", "program"]


def test_init_gets_the_resource_and_before_sees_its_execution_id(
    enabled: list[AsyncHook],
) -> None:
    inits: list[tuple[int, str, int, object]] = []
    inside_before: list[tuple[int, object]] = []
    ids: set[int] = set()

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestArgs":
            ids.add(async_id)
            inits.append((async_id, type, trigger_async_id, resource))

    def before(async_id: int) -> None:
        if async_id in ids:
            inside_before.append((execution_async_id(), execution_async_resource()))

    enabled.append(create_hook(init=init, before=before).enable())
    outer = AsyncResource("Outer")
    resource = outer.run_in_async_scope(AsyncResource, "TestArgs")
    resource.run_in_async_scope(lambda: None)
    assert inits == [(resource.async_id(), "TestArgs", outer.async_id(), resource)]
    assert inside_before == [(resource.async_id(), resource)]


def test_enable_inside_a_hook_takes_effect_when_the_outermost_dispatch_ends(
    enabled: list[AsyncHook],
) -> None:
    late_types: list[str] = []
    late = create_hook(init=own_inits("Test", late_types))
    enabled.append(late)
    nested_created: list[AsyncResource] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestOuter":
            late.enable()
            assert not late.enabled  # deferred while inside the dispatch
            # A nested dispatch: creating a resource from inside a hook.
            nested_created.append(AsyncResource("TestNested"))

    enabled.append(create_hook(init=init).enable())
    AsyncResource("TestOuter")
    assert len(nested_created) == 1
    # Neither the outer event nor the nested one reached the late hook ...
    assert late_types == []
    # ... but it is enabled once the outermost dispatch ended.
    assert late.enabled
    AsyncResource("TestAfter")
    assert late_types == ["TestAfter"]


def test_disable_inside_a_hook_takes_effect_when_the_outermost_dispatch_ends(
    enabled: list[AsyncHook],
) -> None:
    first_types: list[str] = []
    second_types: list[str] = []
    second = create_hook(init=own_inits("Test", second_types))

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type.startswith("Test"):
            first_types.append(type)
        if type == "TestOuter":
            first.disable()
            second.disable()
            AsyncResource("TestNested")

    first = create_hook(init=init)
    enabled.extend([first.enable(), second.enable()])
    AsyncResource("TestOuter")
    # Both hooks still saw the nested event and the rest of the outer one.
    assert first_types == ["TestOuter", "TestNested"]
    assert sorted(second_types) == ["TestNested", "TestOuter"]
    assert not first.enabled
    assert not second.enabled
    AsyncResource("TestAfter")
    assert first_types == ["TestOuter", "TestNested"]
    assert "TestAfter" not in second_types


def test_a_raising_hook_inside_a_nested_dispatch_still_applies_deferred_changes(
    enabled: list[AsyncHook], unraisable: list[Any]
) -> None:
    late_types: list[str] = []
    late = create_hook(init=own_inits("TestLate", late_types))
    enabled.append(late)

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestOuter":
            late.enable()
            AsyncResource("TestNested")
            raise RuntimeError("after scheduling the enable")

    enabled.append(create_hook(init=init).enable())
    AsyncResource("TestOuter")
    assert late.enabled
    assert len(unraisable) == 1
    AsyncResource("TestLate")
    assert late_types == ["TestLate"]


def test_dispatch_state_is_per_thread(enabled: list[AsyncHook]) -> None:
    import threading

    other_thread_hook = create_hook(init=lambda *_: None)
    enabled.append(other_thread_hook)
    results: list[bool] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestThreaded":
            # Another thread is not inside this dispatch: its enable is immediate.
            thread = threading.Thread(
                target=lambda: results.append(other_thread_hook.enable().enabled)
            )
            thread.start()
            thread.join()

    enabled.append(create_hook(init=init).enable())
    AsyncResource("TestThreaded")
    assert results == [True]


def test_init_runs_in_the_creating_execution(enabled: list[AsyncHook]) -> None:
    # As in Node: inside init, the current execution is the one creating the resource.
    inside_init: list[tuple[int, object]] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestCreated":
            inside_init.append((execution_async_id(), execution_async_resource()))

    enabled.append(create_hook(init=init).enable())
    creator = AsyncResource("Creator")
    created = creator.run_in_async_scope(AsyncResource, "TestCreated")
    assert inside_init == [(creator.async_id(), creator)]
    assert created.trigger_async_id() == creator.async_id()


def test_the_hook_repr_names_its_callbacks() -> None:
    hook = create_hook(init=lambda *_: None, destroy=lambda _: None)
    assert repr(hook) == "<AsyncHook disabled (init, destroy)>"
    assert repr(create_hook()) == "<AsyncHook disabled (no callbacks)>"


def test_before_and_after_run_in_the_resource_s_scope_and_destroy_in_the_caller_s(
    enabled: list[AsyncHook],
) -> None:
    ids: set[int] = set()
    seen: list[tuple[str, int, int]] = []

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        if type == "TestScopes":
            ids.add(async_id)

    def recorder(event: str) -> Callable[[int], None]:
        def record(async_id: int) -> None:
            if async_id in ids:
                seen.append((event, async_id, execution_async_id()))

        return record

    hook = create_hook(
        init=init, before=recorder("before"), after=recorder("after"), destroy=recorder("destroy")
    )
    enabled.append(hook.enable())
    resource = AsyncResource("TestScopes")
    resource.run_in_async_scope(lambda: None)
    caller = AsyncResource("Caller")
    caller.run_in_async_scope(resource.emit_destroy)
    async_id = resource.async_id()
    assert seen == [
        ("before", async_id, async_id),
        ("after", async_id, async_id),
        ("destroy", async_id, caller.async_id()),
    ]
