"""What each resource was, kept after it finished, so that causal chains can be told.

A report about a leaked timer wants the task that created it and the
connection that created that task, long after both finished. Each record
holds its parent's record (the resource whose execution created it), so a
chain lives exactly as long as some live resource at its end needs it, and
finished records nobody descends from are freed by reference counting.

Use::

    history = ResourceHistory().enable()
    ...
    for record in history.chain(async_id): print(record)
"""

from __future__ import annotations

import os
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextvars import Context, copy_context
from types import FrameType
from typing import Self

from .. import _hooks
from .._execution import TOP_LEVEL_ASYNC_ID
from .._policy import stores_in
from .._runtime._live import CreationSite, _in_machinery, live_resources

# A chain longer than this is cut: a timer that re-arms itself every second
# would otherwise keep an hour of ancestors alive. Cutting costs one walk of
# this many records, once per this many generations.
MAX_CHAIN = 64


class ResourceRecord:
    """One resource as it was at its ``init``: type, ids, creation site, creator's context.

    The creation site is in the user's code when the resource was made by a
    library called from there (``uvicorn``'s, ``httpx``'s): the library's own
    line says less about where the work came from.
    """

    __slots__ = (
        "async_id",
        "context",
        "created_at",
        "creation_site",
        "depth",
        "destroyed",
        "parent",
        "trigger_async_id",
        "type",
    )

    def __init__(
        self,
        async_id: int,
        type: str,
        trigger_async_id: int,
        creation_site: CreationSite | None,
        context: Context,
        parent: ResourceRecord | None,
    ) -> None:
        self.async_id = async_id
        self.type = type
        self.trigger_async_id = trigger_async_id
        self.creation_site = creation_site
        # A reference, not a copy of the values: the stores are read only
        # when a report asks, as they were when the resource was created.
        self.context = context
        self.created_at = time.monotonic()
        self.parent = parent
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.destroyed = False

    def stores_by_name(self) -> dict[str, object]:
        """The stores of the context the resource was created in, by name."""
        return {store.name: value for store, value in stores_in(self.context).items()}

    def __repr__(self) -> str:
        return f"<ResourceRecord {self.type} async_id={self.async_id}>"


class ResourceHistory:
    """A hook that records every resource's ``init`` and keeps the causal chains.

    ``chain(async_id)`` walks from a resource to the root through the
    records (the resource first). Records of live resources are held by id;
    finished ones only through their descendants.
    """

    def __init__(self) -> None:
        self._live: dict[int, ResourceRecord] = {}
        self._hook = _hooks.AsyncHook(
            {"init": self._init, "destroy": self._destroy}, creation_sites=True
        )

    def enable(self) -> Self:
        self._hook.enable()
        return self

    def disable(self) -> Self:
        self._hook.disable()
        return self

    def _init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        tracked = live_resources.get(async_id)
        parent = self._live.get(trigger_async_id)
        if parent is not None and parent.depth >= 2 * MAX_CHAIN:
            _cut(parent)
        site = None if tracked is None else tracked.creation_site
        if site is not None and _in_a_library(site.filename):
            # A library made it (uvicorn's protocol, a client's pool): the
            # user's line that called into the library says more, if any.
            site = _user_site() or site
        self._live[async_id] = ResourceRecord(
            async_id,
            type,
            trigger_async_id,
            site,
            # The hook runs in a copy of the creator's context: copying that is O(1).
            copy_context(),
            parent,
        )

    def _destroy(self, async_id: int) -> None:
        record = self._live.pop(async_id, None)
        if record is not None:
            record.destroyed = True

    def get(self, async_id: int) -> ResourceRecord | None:
        """The record of a live resource."""
        return self._live.get(async_id)

    def chain(self, async_id: int) -> Iterator[ResourceRecord]:
        """The resource's record, then its trigger's, and so on to the oldest one kept."""
        record = self._live.get(async_id)
        while record is not None:
            yield record
            record = record.parent


# Whether a file is an installed library or the standard library, by file:
# one dict lookup per resource whose creation site was looked at.
_library_files: dict[str, bool] = {}
_LIBRARY_DIRS: tuple[str, ...] = ()


def _in_a_library(filename: str) -> bool:
    known = _library_files.get(filename)
    if known is None:
        known = _library_files[filename] = filename.startswith(_library_dirs()) or (
            "site-packages" in filename or "dist-packages" in filename
        )
    return known


def _library_dirs() -> tuple[str, ...]:
    global _LIBRARY_DIRS
    if not _LIBRARY_DIRS:
        paths = sysconfig.get_paths()
        _LIBRARY_DIRS = tuple(
            {os.path.join(paths[key], "") for key in ("stdlib", "platstdlib", "purelib", "platlib")}
        )
    return _LIBRARY_DIRS


def _user_site() -> CreationSite | None:
    """The innermost frame of the user's own code on this thread's stack, if any."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _in_machinery(filename) and not _in_a_library(filename):
            return CreationSite(frame.f_code, frame.f_lineno)
        frame = frame.f_back
    return None


def _cut(record: ResourceRecord) -> None:
    # Keep the nearest MAX_CHAIN ancestors: they say where the work came from.
    node = record
    for _ in range(MAX_CHAIN):
        if node.parent is None:
            return
        node = node.parent
    node.parent = None
    # The depths below were counted from the old root: recount the kept part.
    kept: list[ResourceRecord] = []
    node = record
    while node is not None:
        kept.append(node)
        node = node.parent  # type: ignore[assignment]
    for depth, node in enumerate(reversed(kept)):
        node.depth = depth


def describe_root(trigger_async_id: int) -> str:
    """How a chain that ends at ``trigger_async_id`` (no record of it) is named."""
    if trigger_async_id == TOP_LEVEL_ASYNC_ID:
        return "the program's top level"
    if trigger_async_id == 0:
        return "no trigger"
    return f"#{trigger_async_id} (finished before it could be recorded, or untracked)"
