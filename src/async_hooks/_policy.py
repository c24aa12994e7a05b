"""The per-store propagation policy: which boundaries each store's value crosses.

Every ``AsyncLocalStorage`` says which boundaries its value crosses
(``crosses=``, a :class:`Crossing`), and this module owns what follows from
it: the validation of a policy, the index of live stores by policy, and the
three functions every boundary helper calls. In-process helpers call
:func:`capture_context` once per job: a copy of the submitter's context in
which the stores that must not cross are back to their default. Process and
machine boundaries cannot carry a ``contextvars.Context`` at all, so
declared stores travel as text: :func:`export_stores` on the sending side,
:func:`import_stores` around the job on the receiving side. Receivers that
must report refused members their own way (servers log them) and carry more
than stores (a request id) use its two parts, :func:`load_carrier` and
:func:`enter_stores`, which ``import_stores`` is made of.

A store's ContextVar belongs to ``_storage.py``; this is the one other module
that reads it (``store._var``), because applying a policy means setting and
testing the variables of many stores at once. ``_storage.py`` imports this
module, never the other way round at run time.
"""

from __future__ import annotations

import enum
import itertools
import json
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Context, ContextVar, Token, copy_context
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, cast

from ._validation import describe
from .errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    StoreSerializationError,
    StoreSerializationWarning,
)

if TYPE_CHECKING:
    from ._storage import AsyncLocalStorage


class Crossing(enum.Flag):
    """The boundaries a store's value may cross into other work.

    In-process boundaries (``THREADS``, ``POOLS``) carry the value itself.
    ``PROCESSES`` and ``REMOTE`` carry it as text, so a store that declares
    them needs a unique name and a serializer.
    """

    NONE = 0
    #: ``threading.Thread`` and greenlets.
    THREADS = enum.auto()
    #: ``Executor.submit``/``map``, ``loop.run_in_executor``, ``asyncio.to_thread``,
    #: ``concurrent.futures`` done-callbacks.
    POOLS = enum.auto()
    #: ``multiprocessing`` and ``ProcessPoolExecutor``.
    PROCESSES = enum.auto()
    #: Outgoing HTTP calls and task queues (Celery).
    REMOTE = enum.auto()
    IN_PROCESS = THREADS | POOLS
    ALL = IN_PROCESS | PROCESSES | REMOTE


#: The crossings that need the value turned into text.
SERIALIZED = Crossing.PROCESSES | Crossing.REMOTE

OnSerializeError: TypeAlias = Literal["raise", "warn"]
_ON_SERIALIZE_ERROR_CHOICES = ("raise", "warn")


class Serializer(Protocol):
    """Turns a store's value into text and back, to cross a process or a machine."""

    def dumps(self, value: Any, /) -> str: ...

    def loads(self, text: str, /) -> Any: ...


def validate_policy(
    name: str, crosses: object, serializer: object, on_serialize_error: object
) -> tuple[Crossing, Serializer | None, OnSerializeError]:
    """Check the policy arguments of a new store; errors name the store."""
    if not isinstance(crosses, Crossing):
        raise InvalidArgTypeError(
            f'AsyncLocalStorage {name!r}: the "crosses" argument must be a Crossing. '
            f"Received {describe(crosses)}"
        )
    if on_serialize_error not in _ON_SERIALIZE_ERROR_CHOICES:
        raise InvalidArgValueError(
            f'AsyncLocalStorage {name!r}: the "on_serialize_error" argument must be '
            f"'raise' or 'warn'. Received {describe(on_serialize_error)}"
        )
    if serializer is not None and not _has_methods(serializer, "dumps", "loads"):
        raise InvalidArgTypeError(
            f'AsyncLocalStorage {name!r}: the "serializer" argument must have '
            f"dumps(value) -> str and loads(text) methods. Received {describe(serializer)}"
        )
    if crosses & SERIALIZED:
        if not name:
            raise InvalidArgValueError(
                f"An AsyncLocalStorage that crosses {_describe_flags(crosses & SERIALIZED)} "
                "needs a non-empty name: the other side finds the store by its name"
            )
        if serializer is None:
            raise InvalidArgValueError(
                f"AsyncLocalStorage {name!r} crosses {_describe_flags(crosses & SERIALIZED)} "
                "and needs a serializer (for example async_hooks.propagation.JSON)"
            )
    policy: OnSerializeError = "raise" if on_serialize_error == "raise" else "warn"
    return crosses, cast("Serializer | None", serializer), policy


def _has_methods(value: object, *names: str) -> bool:
    return all(callable(getattr(value, name, None)) for name in names)


def _describe_flags(flags: Crossing) -> str:
    return " and ".join(member.name or "" for member in Crossing if member in flags and member)


StoreRef: TypeAlias = "weakref.ref[AsyncLocalStorage[Any]]"


class LiveStores:
    """Every live store, held weakly, indexed by what its policy asks for.

    Writes take a lock; reads never do. The hot read, ``in_process_restricted``,
    is a tuple replaced as a whole on each change, so that capturing a context
    for a thread or a pool costs one attribute read when every store crosses
    (the default).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = itertools.count()
        # All stores: capture_context() for PROCESSES/REMOTE resets the
        # undeclared ones. The dict removes dead entries by itself.
        self._all: weakref.WeakValueDictionary[int, AsyncLocalStorage[Any]] = (
            weakref.WeakValueDictionary()
        )
        #: Stores that do not cross THREADS or POOLS, with their crossings.
        self.in_process_restricted: tuple[tuple[StoreRef, Crossing], ...] = ()
        # Stores that cross PROCESSES or REMOTE, by their unique name.
        self._declared: dict[str, StoreRef] = {}
        # The same, split by crossing, for export and import. Each inner dict
        # is replaced, never changed, so readers iterate it without a lock.
        self._declared_for: dict[Crossing, dict[str, StoreRef]] = {
            Crossing.PROCESSES: {},
            Crossing.REMOTE: {},
        }

    def register(self, store: AsyncLocalStorage[Any]) -> None:
        crosses = store.crosses
        with self._lock:
            if crosses & SERIALIZED:
                self._claim_name(store)
            if Crossing.IN_PROCESS & ~crosses:
                self.in_process_restricted = (
                    *((ref, c) for ref, c in self.in_process_restricted if ref() is not None),
                    (weakref.ref(store), crosses),
                )
            self._all[next(self._keys)] = store

    def _claim_name(self, store: AsyncLocalStorage[Any]) -> None:
        name = store.name
        existing = self._declared.get(name)
        if existing is not None and existing() is not None:
            raise InvalidArgValueError(
                f"AsyncLocalStorage {name!r}: another live store that crosses processes "
                "or machines already has this name; names of such stores must be unique"
            )
        ref = weakref.ref(store)
        self._declared[name] = ref
        for crossing, by_name in self._declared_for.items():
            if crossing in store.crosses:
                live = {key: old for key, old in by_name.items() if old() is not None}
                self._declared_for[crossing] = {**live, name: ref}

    def all_stores(self) -> list[AsyncLocalStorage[Any]]:
        # list() of a dict view runs in C without a thread switch: a safe copy.
        return [store for ref in list(self._all.valuerefs()) if (store := ref()) is not None]

    def declared(self, name: str) -> AsyncLocalStorage[Any] | None:
        """The live store that crosses processes or machines under ``name``."""
        ref = self._declared.get(name)
        return None if ref is None else ref()

    def declared_stores(self) -> list[AsyncLocalStorage[Any]]:
        return [store for ref in list(self._declared.values()) if (store := ref()) is not None]

    def declared_for(self, crossing: Crossing) -> dict[str, StoreRef]:
        """``{name: weak reference}`` of the stores declared to cross ``crossing``.

        ``crossing`` is PROCESSES or REMOTE. The dict is never modified: do
        not modify it either.
        """
        return self._declared_for[crossing]


#: The one index of live stores.
live_stores = LiveStores()


# -- applying the policy at a boundary ----------------------------------------


class JsonSerializer:
    """Compact JSON: for strings, numbers, booleans, None, lists and dicts of them."""

    # Built once: json.dumps with options builds a new encoder on every call.
    # allow_nan=False: NaN and Infinity are not JSON, other sides reject them.
    _encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

    def dumps(self, value: Any, /) -> str:
        return self._encode(value)

    def loads(self, text: str, /) -> Any:
        return json.loads(text)

    def __repr__(self) -> str:
        return "async_hooks.propagation.JSON"


#: The ready-made serializer for stores that hold JSON-compatible values.
JSON = JsonSerializer()


def _require_crossing(crossing: object) -> Crossing:
    if not isinstance(crossing, Crossing):
        raise InvalidArgTypeError(
            f'The "crossing" argument must be a Crossing. Received {describe(crossing)}'
        )
    return crossing


def _require_serialized_crossing(crossing: object) -> Crossing:
    if crossing is _PROCESSES or crossing is _REMOTE:
        return crossing
    _require_crossing(crossing)
    if crossing not in (Crossing.PROCESSES, Crossing.REMOTE):
        raise InvalidArgValueError(
            "Stores travel as text only across Crossing.PROCESSES or Crossing.REMOTE "
            f"(in-process work gets capture_context()). Received {crossing!r}"
        )
    return crossing


# Module constants: reading an Enum member off its class costs a lookup in
# the class's metaclass on every call, and these are read once per job.
_THREADS = Crossing.THREADS
_POOLS = Crossing.POOLS
_PROCESSES = Crossing.PROCESSES
_REMOTE = Crossing.REMOTE


def capture_context(crossing: Crossing) -> Context:
    """A copy of the current context for work that crosses ``crossing``.

    Every store whose ``crosses`` lacks ``crossing`` is reset to its default
    in the copy; everything else (other stores, other ContextVars) is the
    caller's. Call it once per job, in the submitting thread.
    """
    context = copy_context()
    # The default policy (every store crosses threads and pools) costs
    # nothing beyond the copy: the restricted tuple is empty.
    if crossing is _THREADS or crossing is _POOLS:
        if not live_stores.in_process_restricted:
            return context
        candidates = [
            store
            for ref, crosses in live_stores.in_process_restricted
            if crossing not in crosses and (store := ref()) is not None
        ]
    else:
        _require_crossing(crossing)
        candidates = [store for store in live_stores.all_stores() if crossing not in store.crosses]
    # A store without an entry already reads as its default: nothing to reset.
    stale = [store for store in candidates if store._var in context]
    if stale:
        context.run(_reset_to_default, stale)
    return context


def stores_in(context: Context) -> dict[AsyncLocalStorage[Any], object]:
    """The value of every live store that has an entry in ``context``."""
    return {
        store: context[store._var] for store in live_stores.all_stores() if store._var in context
    }


def _reset_to_default(stores: Sequence[AsyncLocalStorage[Any]]) -> None:
    for store in stores:
        # Looked up now, not at registration: disable() replaces the variable.
        store._var.set(store.default)


def export_stores(crossing: Crossing) -> dict[str, str]:
    """The declared stores that cross ``crossing``, as ``{name: text}``.

    Only stores with an entry in the current context are included. A value
    the store's serializer cannot handle raises ``StoreSerializationError``
    naming the store, or, for a store declared with
    ``on_serialize_error="warn"``, is left out with a
    ``StoreSerializationWarning``.
    """
    _require_serialized_crossing(crossing)
    context = copy_context()
    carrier: dict[str, str] = {}
    for name, ref in live_stores.declared_for(crossing).items():
        store = ref()
        if store is None:
            continue
        var = store._var
        if var in context:
            text = _dump(store, context[var])
            if text is not None:
                carrier[name] = text
    return carrier


def _dump(store: AsyncLocalStorage[Any], value: Any) -> str | None:
    serializer = store.serializer
    assert serializer is not None  # guaranteed for declared stores at construction
    try:
        text = serializer.dumps(value)
        if not isinstance(text, str):
            raise TypeError(f"{serializer!r}.dumps() returned {describe(text)}, not a str")
    except Exception as error:
        message = f"The value of AsyncLocalStorage {store.name!r} cannot be serialized: {error}"
        if store.on_serialize_error == "raise":
            raise StoreSerializationError(message) from error
        warnings.warn(StoreSerializationWarning(message + " (store skipped)"), stacklevel=3)
        return None
    return text


def import_stores(carrier: Mapping[str, str], crossing: Crossing) -> AbstractContextManager[None]:
    """A ``with`` block inside which the stores of ``carrier`` are entered.

    Each name must be a live store declared to cross ``crossing``; its text
    is loaded with that store's serializer. An unknown name, a store that
    does not cross ``crossing`` or a text that does not load is skipped with
    a ``StoreSerializationWarning``: the carrier came from elsewhere and is
    never trusted. On exit every entered store is reset, also when the block
    raises, so nothing reaches the next job run by the same worker.
    """
    if not isinstance(carrier, Mapping):
        raise InvalidArgTypeError(
            f'The "carrier" argument must be a Mapping[str, str]. Received {describe(carrier)}'
        )
    _require_serialized_crossing(crossing)
    return _ImportedStores(carrier, crossing)


#: How a receiver reports a member of an arrived carrier that is left out:
#: ``(name, crossing, error)``, where ``error`` is what loading its text raised,
#: or None when no live store is declared to cross ``crossing`` by that name.
OnSkipped: TypeAlias = Callable[[str, Crossing, Exception | None], None]


def load_carrier(
    carrier: Mapping[str, object], crossing: Crossing, on_skipped: OnSkipped
) -> dict[AsyncLocalStorage[Any], Any]:
    """The loaded values of an arrived carrier's members, by store, in the carrier's order.

    A member is kept when its name is a live store declared to cross
    ``crossing`` and its text loads with that store's serializer. Every other
    member goes to ``on_skipped`` and is left out: the carrier came from
    elsewhere, so no member of it makes this raise (``on_skipped`` may).
    """
    declared = live_stores.declared_for(crossing)
    values: dict[AsyncLocalStorage[Any], Any] = {}
    for name, text in carrier.items():
        ref = declared.get(name)
        store = None if ref is None else ref()
        if store is None:
            on_skipped(name, crossing, None)
            continue
        serializer = store.serializer
        assert serializer is not None  # guaranteed for declared stores at construction
        try:
            if not isinstance(text, str):
                raise TypeError(f"expected a str, got {describe(text)}")
            values[store] = serializer.loads(text)
        except Exception as error:
            on_skipped(name, crossing, error)
    return values


def warn_skipped(
    name: object, crossing: Crossing, error: Exception | None, *, receiver: str | None = None
) -> None:
    """Report a skipped carrier member with a ``StoreSerializationWarning``.

    ``receiver``, when given, names what received the carrier (a task's
    run) at the start of the message, so that each receiver's warning has a
    text of its own: Python shows a repeated text only once per place.
    """
    if error is None:
        store = live_stores.declared(name) if isinstance(name, str) else None
        missing = "no live store" if store is None else "no store declared to cross it"
        reason = f"{name!r} arrived over {crossing.name} but there is {missing} by that name"
    else:
        reason = f"the value for AsyncLocalStorage {name!r} does not load: {error}"
    # stacklevel: point at the `with import_stores(...)` line of the caller
    # (this function, load_carrier, _ImportedStores.__enter__, that line).
    prefix = "" if receiver is None else f"{receiver}: "
    warnings.warn(StoreSerializationWarning(f"{prefix}Store skipped: {reason}"), stacklevel=4)


def enter_stores(values: Mapping[AsyncLocalStorage[Any], Any]) -> AbstractContextManager[None]:
    """A ``with`` block inside which each store of ``values`` holds its value.

    Stores are entered in the order of ``values`` and all reset on exit, also
    when the block raises.
    """
    return _EnteredStores(values)


class _EnteredStores(AbstractContextManager[None]):
    """The ``with`` block of ``enter_stores``; a class, cheaper than a generator."""

    __slots__ = ("_tokens", "_values")

    def __init__(self, values: Mapping[AsyncLocalStorage[Any], Any]) -> None:
        self._values = values
        self._tokens: list[tuple[ContextVar[Any], Token[Any]]] = []

    def __enter__(self) -> None:
        self._enter(self._values)

    def _enter(self, values: Mapping[AsyncLocalStorage[Any], Any]) -> None:
        tokens = self._tokens
        try:
            for store, value in values.items():
                var = store._var
                tokens.append((var, var.set(value)))
        except BaseException:
            self._reset()
            raise

    def __exit__(self, *_: object) -> None:
        self._reset()

    def _reset(self) -> None:
        tokens = self._tokens
        while tokens:
            var, token = tokens.pop()
            var.reset(token)


class _ImportedStores(_EnteredStores):
    """The ``with`` block of ``import_stores``: the carrier is loaded as the block starts."""

    __slots__ = ("_carrier", "_crossing")

    def __init__(self, carrier: Mapping[str, str], crossing: Crossing) -> None:
        super().__init__({})
        self._carrier = carrier
        self._crossing = crossing

    def __enter__(self) -> None:
        self._enter(load_carrier(self._carrier, self._crossing, warn_skipped))
