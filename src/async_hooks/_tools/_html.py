"""One self-contained HTML page drawn from a trace file: no network, opens from disk.

The page shows the resources as a timeline of their lifetimes with arrows
from each trigger, a filter by store value (typing ``req-7`` keeps the
resources of that request and everything they caused), the stalls, and
what was left running at exit. The data is the trace itself, condensed to
one row per resource and embedded in the page as JSON.

Use::

    write_html_report("trace.json", "report.html")
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

from ._html_page import PAGE

# More resources than this are cut from the page (the oldest kept); the
# page says how many were left out.
MAX_RESOURCES = 500_000


class _Strings:
    """Interns repeated strings (types, sites, store values) as indexes into one table."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.table)
            self.table.append(text)
        return index


def condense(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's data: resources, stalls and the exit report, from trace events."""
    strings = _Strings()
    resources: dict[int, list[Any]] = {}
    threads: dict[int, str] = {}
    stalls: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    process = ""
    end = 0.0
    for event in events:
        phase = event.get("ph")
        ts = float(event.get("ts", 0.0))
        end = max(end, ts + float(event.get("dur", 0.0)))
        if phase == "b" and event.get("cat") == "resource":
            args = event.get("args", {})
            stores = {
                key: value
                for key, value in args.items()
                if key not in ("async_id", "trigger_async_id", "site")
            }
            resources[int(event["id"])] = [
                int(event["id"]),
                strings(str(event.get("name", ""))),
                strings(str(args.get("site", ""))),
                int(args.get("trigger_async_id", 0)),
                ts,
                -1.0,  # end: set by the "e" event, else the trace's end
                strings(json.dumps(stores)) if stores else -1,
                0,  # steps
                0.0,  # time in steps
                int(event.get("tid", 0)),
            ]
        elif phase == "e" and event.get("cat") == "resource":
            row = resources.get(int(event["id"]))
            if row is not None:
                row[5] = ts
        elif phase == "X" and event.get("cat") == "step":
            args = event.get("args", {})
            row = resources.get(int(args.get("async_id", -1)))
            if row is not None:
                row[7] += 1
                row[8] += float(event.get("dur", 0.0))
                stores = {
                    key: value
                    for key, value in args.items()
                    if key not in ("async_id", "trigger_async_id")
                }
                if stores and row[6] == -1:
                    row[6] = strings(json.dumps(stores))
        elif phase == "X" and event.get("cat") == "stall":
            stalls.append({"name": event.get("name"), "ts": ts, "dur": event.get("dur"),
                           "tid": event.get("tid"), "args": event.get("args", {})})  # fmt: skip
        elif phase == "i" and event.get("cat") == "why-running":
            left = list(event.get("args", {}).get("resources", []))
        elif phase == "M" and event.get("name") == "thread_name":
            threads[int(event.get("tid", 0))] = str(event.get("args", {}).get("name", ""))
        elif phase == "M" and event.get("name") == "process_name":
            process = str(event.get("args", {}).get("name", ""))
    rows = sorted(resources.values(), key=lambda row: row[4])
    omitted = max(len(rows) - MAX_RESOURCES, 0)
    if omitted:
        rows = rows[omitted:]
    return {
        "process": process,
        "end": end,
        "strings": strings.table,
        "resources": rows,
        "omitted": omitted,
        "threads": {str(tid): name for tid, name in threads.items()},
        "stalls": stalls,
        "left": left,
    }


def render(data: dict[str, Any], *, title: str) -> str:
    """The page for ``condense()``'s data."""
    # Inside <script>, "</" would end the element early: escape it in the JSON.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_html_report(
    trace_path: str | os.PathLike[str], html_path: str | os.PathLike[str], *, title: str = ""
) -> None:
    """Write the report page for a trace file written by :class:`TraceWriter`."""
    with open(trace_path, encoding="utf-8") as file:
        events = json.load(file)
    if not isinstance(events, list):
        raise ValueError(
            f'The "trace_path" argument must name a JSON array of trace events. '
            f"Received a file holding {type(events).__name__}"
        )
    data = condense(events)
    page = render(data, title=title or data["process"] or os.path.basename(os.fspath(trace_path)))
    with open(html_path, "w", encoding="utf-8") as file:
        file.write(page)
