"""The per-store propagation policy: construction, capture_context, export/import of stores."""

from __future__ import annotations

import gc
import itertools
import math
from typing import Any

import pytest

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    StoreSerializationError,
    StoreSerializationWarning,
)
from async_hooks.propagation import JSON, capture_context, export_stores, import_stores

_names = itertools.count()


def unique(prefix: str) -> str:
    # Declared names must be unique among live stores, across the whole test run.
    return f"test_policy.{prefix}.{next(_names)}"


def declared(crosses: Crossing = Crossing.ALL, **kwargs: Any) -> AsyncLocalStorage[Any]:
    return AsyncLocalStorage(
        name=unique("store"), crosses=crosses, serializer=kwargs.pop("serializer", JSON), **kwargs
    )


class Unpicklable:
    pass


class TextOnlyOnce:
    """A serializer whose dumps returns bytes: a bug the policy must report."""

    def dumps(self, value: Any, /) -> str:
        return b"not text"  # type: ignore[return-value]

    def loads(self, text: str, /) -> Any:
        return text


# -- construction --------------------------------------------------------------


def test_default_policy_crosses_in_process_only() -> None:
    store: AsyncLocalStorage[int] = AsyncLocalStorage()
    assert store.crosses is Crossing.IN_PROCESS
    assert store.serializer is None
    assert store.on_serialize_error == "raise"


def test_crossing_flags_compose() -> None:
    assert Crossing.IN_PROCESS == Crossing.THREADS | Crossing.POOLS
    assert Crossing.ALL == Crossing.IN_PROCESS | Crossing.PROCESSES | Crossing.REMOTE
    assert Crossing.NONE.value == 0


@pytest.mark.parametrize("attribute", ["crosses", "serializer", "on_serialize_error"])
def test_policy_properties_are_read_only(attribute: str) -> None:
    store = declared()
    with pytest.raises(AttributeError):
        setattr(store, attribute, None)


def test_crosses_must_be_a_crossing() -> None:
    with pytest.raises(InvalidArgTypeError, match=r"'bad'.*crosses.*Crossing") as caught:
        AsyncLocalStorage(name="bad", crosses=3)  # type: ignore[arg-type]
    assert caught.value.code == "ERR_INVALID_ARG_TYPE"


def test_processes_need_a_name() -> None:
    with pytest.raises(InvalidArgValueError, match=r"PROCESSES.*non-empty name") as caught:
        AsyncLocalStorage(crosses=Crossing.PROCESSES, serializer=JSON)
    assert caught.value.code == "ERR_INVALID_ARG_VALUE"


def test_remote_needs_a_serializer_and_the_error_names_the_store() -> None:
    with pytest.raises(InvalidArgValueError, match=r"'tenant' crosses REMOTE.*serializer"):
        AsyncLocalStorage(name="tenant", crosses=Crossing.REMOTE)


def test_serializer_must_have_dumps_and_loads() -> None:
    with pytest.raises(InvalidArgTypeError, match=r"'half'.*dumps.*loads"):
        AsyncLocalStorage(name="half", serializer=object())  # type: ignore[arg-type]


def test_on_serialize_error_must_be_raise_or_warn() -> None:
    with pytest.raises(InvalidArgValueError, match=r"'x'.*on_serialize_error.*'ignore'"):
        AsyncLocalStorage(name="x", on_serialize_error="ignore")  # type: ignore[arg-type]


def test_declared_names_are_unique_among_live_stores() -> None:
    name = unique("dup")
    first = AsyncLocalStorage[int](name=name, crosses=Crossing.PROCESSES, serializer=JSON)
    with pytest.raises(InvalidArgValueError, match=f"{name!r}.*already has this name"):
        AsyncLocalStorage(name=name, crosses=Crossing.REMOTE, serializer=JSON)
    # An in-process store may share the name: it never travels by name.
    AsyncLocalStorage(name=name)
    assert first.name == name
    del first
    gc.collect()
    again = AsyncLocalStorage[int](name=name, crosses=Crossing.PROCESSES, serializer=JSON)
    assert again.crosses is Crossing.PROCESSES


# -- capture_context -----------------------------------------------------------


def test_capture_context_keeps_crossing_stores_and_resets_the_others() -> None:
    everywhere = AsyncLocalStorage[str](name="everywhere")
    nowhere = AsyncLocalStorage[str](name="secret", default="none", crosses=Crossing.NONE)
    threads_only = AsyncLocalStorage[str](crosses=Crossing.THREADS)
    everywhere.enter_with("a")
    nowhere.enter_with("b")
    threads_only.enter_with("c")
    try:
        for_threads = capture_context(Crossing.THREADS)
        for_pools = capture_context(Crossing.POOLS)
        assert for_threads.run(everywhere.get_store) == "a"
        assert for_threads.run(nowhere.get_store) == "none"
        assert for_threads.run(threads_only.get_store) == "c"
        assert for_pools.run(everywhere.get_store) == "a"
        assert for_pools.run(nowhere.get_store) == "none"
        assert for_pools.run(threads_only.get_store) is None
        # The caller's own context is untouched.
        assert nowhere.get_store() == "b"
    finally:
        everywhere.disable()
        nowhere.disable()
        threads_only.disable()


def test_capture_context_for_processes_keeps_only_declared_stores() -> None:
    local = AsyncLocalStorage[str]()
    travelling = declared(Crossing.PROCESSES)
    local.enter_with("local")
    travelling.enter_with("travels")
    try:
        context = capture_context(Crossing.PROCESSES)
        assert context.run(local.get_store) is None
        assert context.run(travelling.get_store) == "travels"
    finally:
        local.disable()
        travelling.disable()


def test_capture_context_follows_disable() -> None:
    # disable() swaps the store's ContextVar: the policy must reset the new one.
    nowhere = AsyncLocalStorage[str](crosses=Crossing.NONE)
    nowhere.enter_with("old")
    nowhere.disable()
    nowhere.enter_with("new")
    try:
        assert capture_context(Crossing.POOLS).run(nowhere.get_store) is None
    finally:
        nowhere.disable()


def test_capture_context_rejects_a_non_crossing() -> None:
    with pytest.raises(InvalidArgTypeError, match=r"crossing"):
        capture_context("threads")  # type: ignore[arg-type]


# -- export_stores ---------------------------------------------------------------


def test_export_includes_only_declared_stores_with_an_entry() -> None:
    remote_only = declared(Crossing.REMOTE)
    both = declared(Crossing.ALL)
    unset = declared(Crossing.ALL)
    plain = AsyncLocalStorage[str](name="plain")
    remote_only.enter_with("r")
    both.enter_with({"user": 7, "roles": ["a"]})
    plain.enter_with("p")
    try:
        carrier = export_stores(Crossing.PROCESSES)
        assert carrier[both.name] == '{"user":7,"roles":["a"]}'
        assert remote_only.name not in carrier
        assert unset.name not in carrier
        assert "plain" not in carrier
        assert export_stores(Crossing.REMOTE)[remote_only.name] == '"r"'
    finally:
        for store in (remote_only, both, plain):
            store.disable()


def test_export_raises_naming_the_store() -> None:
    store = declared()
    store.enter_with(Unpicklable())
    try:
        with pytest.raises(StoreSerializationError, match=f"{store.name!r}") as caught:
            export_stores(Crossing.PROCESSES)
        assert caught.value.code == "ERR_STORE_NOT_SERIALIZABLE"
        assert isinstance(caught.value.__cause__, TypeError)
    finally:
        store.disable()


def test_export_rejects_nan_rather_than_sending_invalid_json() -> None:
    store = declared()
    store.enter_with(math.nan)
    try:
        with pytest.raises(StoreSerializationError, match=store.name):
            export_stores(Crossing.REMOTE)
    finally:
        store.disable()


def test_export_reports_a_serializer_that_returns_no_text() -> None:
    store = declared(serializer=TextOnlyOnce())
    store.enter_with("x")
    try:
        with pytest.raises(StoreSerializationError, match=r"not a str"):
            export_stores(Crossing.PROCESSES)
    finally:
        store.disable()


def test_export_warns_and_skips_when_the_store_says_so() -> None:
    skipped = declared(on_serialize_error="warn")
    kept = declared()
    skipped.enter_with(Unpicklable())
    kept.enter_with(1)
    try:
        with pytest.warns(StoreSerializationWarning, match=f"{skipped.name!r}.*skipped"):
            carrier = export_stores(Crossing.PROCESSES)
        assert carrier.get(kept.name) == "1"
        assert skipped.name not in carrier
    finally:
        skipped.disable()
        kept.disable()


@pytest.mark.parametrize("crossing", [Crossing.THREADS, Crossing.IN_PROCESS, Crossing.NONE])
def test_export_and_import_are_for_processes_and_remote_only(crossing: Crossing) -> None:
    with pytest.raises(InvalidArgValueError, match=r"PROCESSES or Crossing.REMOTE"):
        export_stores(crossing)
    with pytest.raises(InvalidArgValueError, match=r"PROCESSES or Crossing.REMOTE"):
        import_stores({}, crossing)


# -- import_stores ---------------------------------------------------------------


def test_import_enters_stores_for_the_block_only() -> None:
    store = declared(default="default")
    with import_stores({store.name: '{"id":3}'}, Crossing.PROCESSES):
        assert store.get_store() == {"id": 3}
    assert store.get_store() == "default"


def test_import_resets_stores_when_the_block_raises() -> None:
    store = declared()
    store.enter_with("outer")
    try:
        seen: list[str | None] = []

        def job() -> None:
            with import_stores({store.name: '"inner"'}, Crossing.REMOTE):
                seen.append(store.get_store())
                raise KeyError("job failed")

        with pytest.raises(KeyError):
            job()
        assert seen == ["inner"]
        assert store.get_store() == "outer"
    finally:
        store.disable()


def test_round_trip_through_text() -> None:
    store = declared()
    with store.with_scope({"tenant": "acme", "n": [1, 2]}):
        carrier = export_stores(Crossing.PROCESSES)
    assert store.get_store() is None
    with import_stores(carrier, Crossing.PROCESSES):
        assert store.get_store() == {"tenant": "acme", "n": [1, 2]}


def test_import_skips_unknown_names_with_a_warning() -> None:
    store = declared()
    with (
        pytest.warns(StoreSerializationWarning, match=r"'nobody-has-this'.*no live store"),
        import_stores({"nobody-has-this": "1", store.name: "2"}, Crossing.REMOTE),
    ):
        assert store.get_store() == 2


def test_import_skips_a_store_not_declared_for_that_crossing() -> None:
    remote_only = declared(Crossing.REMOTE)
    with (
        pytest.warns(StoreSerializationWarning, match=r"PROCESSES.*no store declared"),
        import_stores({remote_only.name: '"x"'}, Crossing.PROCESSES),
    ):
        assert remote_only.get_store() is None


@pytest.mark.parametrize("text", ["{not json", 42])
def test_import_skips_text_that_does_not_load(text: Any) -> None:
    store = declared(default="d")
    with (
        pytest.warns(StoreSerializationWarning, match=f"{store.name!r} does not load"),
        import_stores({store.name: text}, Crossing.PROCESSES),
    ):
        assert store.get_store() == "d"


def test_import_rejects_a_carrier_that_is_not_a_mapping() -> None:
    with pytest.raises(InvalidArgTypeError, match=r"carrier"):
        import_stores([("a", "b")], Crossing.REMOTE)  # type: ignore[arg-type]


def test_json_is_compact() -> None:
    assert JSON.dumps({"a": [1, 2], "b": None}) == '{"a":[1,2],"b":null}'
    assert JSON.loads('{"a":1}') == {"a": 1}


def test_capture_context_for_several_crossings_at_once() -> None:
    threads_only = AsyncLocalStorage[str](crosses=Crossing.THREADS)
    everywhere = AsyncLocalStorage[str]()
    threads_only.enter_with("t")
    everywhere.enter_with("e")
    try:
        context = capture_context(Crossing.IN_PROCESS)
        assert context.run(threads_only.get_store) is None
        assert context.run(everywhere.get_store) == "e"
    finally:
        threads_only.disable()
        everywhere.disable()
