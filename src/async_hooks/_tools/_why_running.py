"""What keeps a program alive: every pending resource with its request and its causes.

Use::

    print(why_running(), file=sys.stderr)           # human-readable
    report = json.loads(why_running(format="json"))  # for machines

Each entry has the resource's type, async id, age, state, creation site,
what a task is awaiting, the stores of its context and its causal chain:
its trigger, that one's trigger, and so on back to the top level. Chains
past resources that already finished need a :class:`ResourceHistory`
enabled before they were created (``python -m async_hooks run`` enables
one); without it the chain goes through live resources only.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from typing import Any

from .. import _hooks
from .._active import ActiveResource, get_active_resources
from .._runtime._live import CreationSite, live_resources
from ._history import ResourceHistory, describe_root
from ._trace import short_path, site_label
from ._values import (
    DEFAULT_REPR_LIMIT,
    context_of,
    innermost_context,
    render_stores,
    safe_repr,
    stores_by_name,
)

#: Threads of the tools themselves: never part of what the program left running.
TOOL_THREAD_PREFIX = "async-hooks-"

_FORMATS = ("text", "json")


def why_running(
    *,
    format: str = "text",
    stores: Iterable[str] | None = None,
    history: ResourceHistory | None = None,
    repr_limit: int = DEFAULT_REPR_LIMIT,
) -> str:
    """Describe every pending task, future, timer, handle, server, transport, job and thread.

    ``format`` is ``"text"`` or ``"json"``. ``stores`` limits the stores shown
    to those names (all by default). ``history`` (a :class:`ResourceHistory`)
    lets chains go through resources that already finished.
    """
    if format not in _FORMATS:
        raise ValueError(f'The "format" argument must be "text" or "json". Received {format!r}')
    entries = pending_work(stores=stores, history=history, repr_limit=repr_limit)
    if format == "json":
        return json.dumps({"count": len(entries), "resources": entries}, indent=2)
    return format_text(entries)


def pending_work(
    *,
    stores: Iterable[str] | None = None,
    history: ResourceHistory | None = None,
    repr_limit: int = DEFAULT_REPR_LIMIT,
) -> list[dict[str, Any]]:
    """The entries of :func:`why_running`, as plain data (JSON-ready)."""
    _hooks.flush_pending_destroys()
    active = [resource for resource in get_active_resources() if _keeps_alive(resource)]
    return describe(active, stores=stores, history=history, limit=repr_limit)


def describe(
    resources: list[ActiveResource],
    *,
    stores: Iterable[str] | None = None,
    history: ResourceHistory | None = None,
    limit: int = DEFAULT_REPR_LIMIT,
) -> list[dict[str, Any]]:
    """One why-running entry per resource; chains go through ``resources`` and ``history``."""
    wanted = None if stores is None else set(stores)
    by_id: dict[int | None, ActiveResource] = {
        resource.async_id: resource for resource in resources if resource.async_id is not None
    }
    by_object = {id(resource.resource): resource for resource in resources}
    return [_entry(resource, by_id, by_object, wanted, history, limit) for resource in resources]


def _keeps_alive(active: ActiveResource) -> bool:
    resource = active.resource
    if isinstance(resource, threading.Thread):
        return not resource.daemon and not resource.name.startswith(TOOL_THREAD_PREFIX)
    return True


def _entry(
    active: ActiveResource,
    by_id: dict[int | None, ActiveResource],
    by_object: dict[int, ActiveResource],
    wanted: set[str] | None,
    history: ResourceHistory | None,
    limit: int,
) -> dict[str, Any]:
    context = innermost_context(active.resource)
    if context is None and active.async_id is not None:
        # On 3.11 a task's own context is only readable through what it awaits.
        context = context_of(live_resources.get(active.async_id))
    values = _only(active.stores_by_name() if context is None else stores_by_name(context), wanted)
    entry: dict[str, Any] = {
        "type": active.type,
        "async_id": active.async_id,
        "trigger_async_id": active.trigger_async_id,
        "age": None if active.age is None else round(active.age, 3),
        "state": _state(active.resource),
        "keeps_busy": active.keeps_busy,
        "creation_site": site_label(_user_site_of(active, history)) or None,
        "stores": render_stores(values, limit),
        "chain": _chain(active, by_id, wanted, history, limit),
    }
    awaiting = _awaiting(active.resource, by_object, limit)
    if awaiting is not None:
        entry["awaiting"] = awaiting
    return entry


def _user_site_of(active: ActiveResource, history: ResourceHistory | None) -> CreationSite | None:
    # The history knows the user's line when a library created the resource.
    record = None if history is None or active.async_id is None else history.get(active.async_id)
    return active.creation_site if record is None else record.creation_site


def _only(values: dict[str, object], wanted: set[str] | None) -> dict[str, object]:
    if wanted is None:
        return values
    return {name: value for name, value in values.items() if name in wanted}


def _state(resource: object) -> str:
    if isinstance(resource, asyncio.Task):
        if resource.done():
            return "done"
        return "pending (loop closed)" if resource.get_loop().is_closed() else "pending"
    if isinstance(resource, asyncio.Future):
        return "pending"
    if isinstance(resource, threading.Thread):
        return f"{'alive' if resource.is_alive() else 'not started'}, named {resource.name!r}"
    when = getattr(resource, "when", None)
    loop: Any = getattr(resource, "_loop", None)
    if callable(when):
        try:
            due = float(when())
        except Exception:
            return "scheduled"
        if isinstance(loop, asyncio.AbstractEventLoop):
            if loop.is_closed():
                return "scheduled (loop closed: will never run)"
            return f"fires in {max(due - loop.time(), 0.0):.3f} s"
        return "scheduled"
    if callable(getattr(resource, "is_serving", None)):
        return "serving"
    if callable(getattr(resource, "is_closing", None)):
        return "open"
    return "scheduled" if isinstance(resource, asyncio.Handle) else "pending"


def _awaiting(resource: object, by_object: dict[int, ActiveResource], limit: int) -> str | None:
    """``outer() at app.py:12 -> inner() at app.py:30 -> Future #42`` for a suspended task."""
    if not isinstance(resource, asyncio.Task):
        return None
    coro: Any = resource.get_coro()
    coro = getattr(coro, "__wrapped__", coro)  # tracking drives a wrapper of the user's coroutine
    parts: list[str] = []
    for _ in range(32):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        name = getattr(coro, "__qualname__", type(coro).__name__)
        parts.append(f"{name}() at {short_path(frame.f_code.co_filename)}:{frame.f_lineno}")
        inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is None or not (hasattr(inner, "cr_frame") or hasattr(inner, "gi_frame")):
            break
        coro = inner
    # What the task's innermost await is waiting for: asyncio keeps it on the task.
    waiter = getattr(resource, "_fut_waiter", None)
    if waiter is not None:
        known = by_object.get(id(waiter))
        if known is not None and known.async_id is not None:
            parts.append(f"{known.type} #{known.async_id}")
        else:
            parts.append(safe_repr(waiter, min(limit, 200)))
    return " -> ".join(parts) or None


def _chain(
    active: ActiveResource,
    by_id: dict[int | None, ActiveResource],
    wanted: set[str] | None,
    history: ResourceHistory | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The resource's causes, nearest first, ending with how the chain ends."""
    links: list[dict[str, Any]] = []
    if active.async_id is None:
        return links
    trigger = active.trigger_async_id
    if history is not None and history.get(active.async_id) is not None:
        records = list(history.chain(active.async_id))[1:]
        for record in records:
            links.append(
                {
                    "type": record.type,
                    "async_id": record.async_id,
                    "creation_site": site_label(record.creation_site) or None,
                    "stores": render_stores(_only(record.stores_by_name(), wanted), limit),
                    "finished": record.destroyed,
                }
            )
        trigger = records[-1].trigger_async_id if records else active.trigger_async_id
    else:
        seen: set[int] = set()
        while trigger is not None and trigger in by_id and trigger not in seen:
            seen.add(trigger)
            parent = by_id[trigger]
            links.append(
                {
                    "type": parent.type,
                    "async_id": parent.async_id,
                    "creation_site": site_label(parent.creation_site) or None,
                    "stores": render_stores(_only(parent.stores_by_name(), wanted), limit),
                    "finished": False,
                }
            )
            trigger = parent.trigger_async_id
    if trigger is not None:
        links.append({"root": describe_root(trigger), "async_id": trigger})
    return links


# -- text ------------------------------------------------------------------------------


def format_text(entries: list[dict[str, Any]], *, heading: str | None = None) -> str:
    """The entries of :func:`pending_work` as the report a person reads."""
    if heading is None:
        count = sum(1 for entry in entries if entry["keeps_busy"])
        heading = f"{count} thing{'s' if count != 1 else ''} keep{'' if count != 1 else 's'} "
        heading += "the program running"
    lines = [f"async-hooks: {heading}"]
    if not entries:
        lines.append("  nothing is pending")
    for entry in entries:
        lines.append("")
        ident = "untracked" if entry["async_id"] is None else f"#{entry['async_id']}"
        age = "" if entry["age"] is None else f", age {entry['age']:.3f} s"
        passive = "" if entry["keeps_busy"] else " (does not keep the loop busy by itself)"
        lines.append(f"* {entry['type']} {ident}{age}, {entry['state']}{passive}")
        if entry["creation_site"]:
            lines.append(f"    created at {entry['creation_site']}")
        if "awaiting" in entry:
            lines.append(f"    awaiting {entry['awaiting']}")
        if entry["stores"]:
            lines.append(f"    stores: {_stores_text(entry['stores'])}")
        for link in entry["chain"]:
            if "root" in link:
                lines.append(f"    <- {link['root']}")
                continue
            text = f"    <- {link['type']} #{link['async_id']}"
            if link["creation_site"]:
                text += f" created at {link['creation_site']}"
            if link["finished"]:
                text += " (finished)"
            if link["stores"]:
                text += f" [{_stores_text(link['stores'])}]"
            lines.append(text)
    return "\n".join(lines) + "\n"


def _stores_text(stores: dict[str, str]) -> str:
    return ", ".join(f"{name or '(unnamed)'}={value}" for name, value in stores.items())
