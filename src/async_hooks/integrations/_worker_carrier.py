"""The carrier as a task-queue worker takes it: Celery, RQ and Dramatiq share this.

A queue message carries the same two parts as an HTTP request (``_carrier.py``):
the declared stores as ``{name: text}`` and the request id apart. A worker
differs from a server in how it treats what it refuses: it warns
(``StoreSerializationWarning``, naming the run) instead of logging, and it
never makes an id up. Each integration names where its carrier travels
(``Celery header``, ``RQ job meta``, ``Dramatiq message option``)::

    with enter_worker_carrier(stores, header_id, run="job f[42]", place="RQ job meta"):
        ...
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager

from .._policy import Crossing, warn_skipped
from ..errors import StoreSerializationWarning
from ._carrier import accept_valid_id, enter_carrier

# The keys of the carrier in a message: Celery header names, RQ meta keys
# and Dramatiq option names alike. Celery copies headers into its request
# object, so these must stay valid attribute names.
STORES_KEY = "async_hooks_stores"
REQUEST_ID_KEY = "async_hooks_request_id"


class WorkerRun:
    """How a worker's run takes its carrier: every refusal is a warning naming the run."""

    __slots__ = ("_place", "_run")

    # A worker has no option to distrust ids, as servers have: an id that
    # arrives is used when it is valid.
    trust_incoming = True

    def __init__(self, run: str, place: str) -> None:
        self._run = run
        self._place = place

    def accept_id(self, value: object) -> str | None:
        return accept_valid_id(value)

    def fresh_id(self) -> None:
        # No id is made up in the worker: log lines then show no id that no
        # request ever had.
        return None

    def skipped(self, name: str, crossing: Crossing, error: Exception | None) -> None:
        warn_skipped(name, crossing, error, receiver=self._run)

    def rejected_id(self, value: object, from_header: bool, replacement: str | None) -> None:
        warnings.warn(
            f"{self._run}: the request id in the {self._place} is not valid: "
            f"{repr(value)[:60]}; ignored",
            StoreSerializationWarning,
            stacklevel=2,
        )


def enter_worker_carrier(
    stores: object, header_id: object, *, run: str, place: str
) -> AbstractContextManager[str | None]:
    """Enter an arrived message's stores and request id for the block.

    ``stores`` is what arrived under ``STORES_KEY`` (None: nothing), which
    must be a mapping of str to str; ``header_id`` what arrived under
    ``REQUEST_ID_KEY``. ``run`` names the run in warnings (``task
    charge[42]``), ``place`` says where the carrier came from in the plural
    (``Celery headers``). Nothing raises for what arrived: a bad part gives
    a warning and is left out.
    """
    members = _read_stores(stores, run, place)
    return enter_carrier(members, header_id, WorkerRun(run, place))


def _read_stores(value: object, run: str, place: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(
        isinstance(name, str) and isinstance(text, str) for name, text in value.items()
    ):
        return value
    warnings.warn(
        f"{run}: {STORES_KEY!r} in the {place} is not a mapping of str to str; "
        f"no store was entered (got {type(value).__name__})",
        StoreSerializationWarning,
        stacklevel=3,
    )
    return {}


def accept_carried_id(value: object, *, run: str, place: str, what: str) -> str | None:
    """``value`` when it is a valid id (the request-id rule), else None with a warning.

    For the ids a worker carries besides the request id (a parent job's id),
    which end up on log lines like it and so get the same checks.
    """
    if value is None:
        return None
    accepted = accept_valid_id(value)
    if accepted is None:
        warnings.warn(
            f"{run}: the {what} in the {place} is not valid: {repr(value)[:60]}; ignored",
            StoreSerializationWarning,
            stacklevel=3,
        )
    return accepted
