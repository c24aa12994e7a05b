"""The per-store propagation policy, applied at each boundary.

Every ``AsyncLocalStorage`` says which boundaries its value crosses
(``crosses=``, a :class:`Crossing`). In-process helpers call
:func:`capture_context` once per job: a copy of the submitter's context in
which the stores that must not cross are back to their default. Process and
machine boundaries cannot carry a ``contextvars.Context`` at all, so
declared stores travel as text: :func:`export_stores` on the sending side,
:func:`import_stores` around the job on the receiving side.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Context, ContextVar, Token, copy_context
from typing import Any

from .._store_policy import Crossing, Serializer, registry
from .._validation import describe
from ..errors import (
    InvalidArgTypeError,
    InvalidArgValueError,
    StoreSerializationError,
    StoreSerializationWarning,
)
from ..storage import AsyncLocalStorage

__all__ = [
    "JSON",
    "Crossing",
    "JsonSerializer",
    "Serializer",
    "capture_context",
    "export_stores",
    "import_stores",
]


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
        if not registry.in_process_restricted:
            return context
        candidates = [
            store
            for ref, crosses in registry.in_process_restricted
            if crossing not in crosses and (store := ref()) is not None
        ]
    else:
        _require_crossing(crossing)
        candidates = [store for store in registry.all_stores() if crossing not in store.crosses]
    # A store without an entry already reads as its default: nothing to reset.
    stale = [store for store in candidates if store._var in context]
    if stale:
        context.run(_reset_to_default, stale)
    return context


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
    for name, ref in registry.declared_for(crossing).items():
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


class _ImportedStores(AbstractContextManager[None]):
    """The ``with`` block of ``import_stores``; a class, cheaper than a generator."""

    __slots__ = ("_carrier", "_crossing", "_tokens")

    def __init__(self, carrier: Mapping[str, str], crossing: Crossing) -> None:
        self._carrier = carrier
        self._crossing = crossing
        self._tokens: list[tuple[ContextVar[Any], Token[Any]]] = []

    def __enter__(self) -> None:
        declared = registry.declared_for(self._crossing)
        tokens = self._tokens
        try:
            for name, text in self._carrier.items():
                ref = declared.get(name)
                store = None if ref is None else ref()
                if store is None:
                    _warn_unknown(name, self._crossing)
                    continue
                loaded, value = _load(store, text)
                if loaded:
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


def _warn_unknown(name: object, crossing: Crossing) -> None:
    store = registry.declared(name) if isinstance(name, str) else None
    reason = "no live store" if store is None else "no store declared to cross it"
    _warn_skipped(f"{name!r} arrived over {crossing.name} but there is {reason} by that name")


def _load(store: AsyncLocalStorage[Any], text: object) -> tuple[bool, Any]:
    serializer = store.serializer
    assert serializer is not None
    try:
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {describe(text)}")
        return True, serializer.loads(text)
    except Exception as error:
        _warn_skipped(f"the value for AsyncLocalStorage {store.name!r} does not load: {error}")
        return False, None


def _warn_skipped(reason: str) -> None:
    # stacklevel: point at the `with import_stores(...)` line of the caller.
    warnings.warn(StoreSerializationWarning(f"Store skipped: {reason}"), stacklevel=4)
