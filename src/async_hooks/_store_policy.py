"""The data of the per-store propagation policy: what each store may cross.

This module holds only what ``AsyncLocalStorage``'s constructor needs: the
``Crossing`` flags, the serializer protocol, the validation of a policy and
the registry of stores by policy. The functions that act on the policy
(``capture_context``, ``export_stores``, ``import_stores``) live in
``async_hooks.propagation.policy``. The split keeps storage.py from loading
the propagation helpers, and the helpers free to import storage.py, without
an import cycle.
"""

from __future__ import annotations

import enum
import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, cast

from ._validation import describe
from .errors import InvalidArgTypeError, InvalidArgValueError

if TYPE_CHECKING:
    from .storage import AsyncLocalStorage

__all__ = [
    "Crossing",
    "OnSerializeError",
    "Serializer",
    "StoreRegistry",
    "registry",
    "validate_policy",
]


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


class StoreRegistry:
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


registry = StoreRegistry()
