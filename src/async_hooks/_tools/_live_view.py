"""A live view of a running process: its task table and causal tree, on a private socket.

The process serves a snapshot of what is running (ids, state, age, what each
task awaits, store values, creation site) on a unix socket that only its
user can open: ``<runtime dir>/async-hooks/<pid>.sock`` with mode 0600,
where the runtime dir is ``$XDG_RUNTIME_DIR``, else an owner-only folder
in the temp directory. Connections from another user are also refused by
their credentials. Nothing listens on TCP.

In the program::

    from async_hooks.diagnostics import serve_live
    serve_live()            # or: python -m async_hooks run --live app.py

From a shell: ``python -m async_hooks ps`` lists the processes,
``ps PID`` prints the table and ``tree PID`` the tree.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from typing import Any

from ._history import ResourceHistory
from ._why_running import TOOL_THREAD_PREFIX, pending_work

# A request line from a client is at most this long; anything else is dropped.
_MAX_REQUEST = 64
_REQUESTS = ("info", "snapshot")


class LiveViewError(Exception):
    """A live view that cannot be shown: the message names the process and why."""


def runtime_directory() -> str:
    """The owner-only folder where this user's processes put their sockets."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = os.path.join(base, "async-hooks")
    else:
        path = os.path.join(tempfile.gettempdir(), f"async-hooks-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise LiveViewError(f"{path} is not a folder owned by this user: refusing to use it")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def socket_path(pid: int) -> str:
    return os.path.join(runtime_directory(), f"{pid}.sock")


class LiveServer:
    """Serves this process's snapshot until :meth:`close` (or exit). See :func:`serve_live`."""

    def __init__(self, stores: Iterable[str] | None = None) -> None:
        self.stores = None if stores is None else tuple(stores)
        self.path = socket_path(os.getpid())
        self.started = time.time()
        self._listener = _bind_owner_only(self.path)
        self._closed = threading.Event()
        # The thread first and the hook after, so that tracking does not see the thread.
        self._thread = threading.Thread(
            target=self._serve, name=f"{TOOL_THREAD_PREFIX}live-view", daemon=True
        )
        self._thread.start()
        # A hook keeps tracking on (the view needs ids) and the causes after they finish.
        self.history = ResourceHistory().enable()
        atexit.register(self.close)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.history.disable()
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with client, contextlib.suppress(OSError):
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(2.0)
        if not _same_user(client):
            return
        request = client.recv(_MAX_REQUEST).decode("ascii", "replace").strip()
        if request not in _REQUESTS:
            client.sendall(b'{"error": "unknown request"}\n')
            return
        answer: dict[str, Any] = {
            "pid": os.getpid(),
            "argv": sys.argv,
            "started": self.started,
        }
        if request == "snapshot":
            answer["resources"] = pending_work(stores=self.stores, history=self.history)
        client.sendall(json.dumps(answer, default=str).encode() + b"\n")


def _bind_owner_only(path: str) -> socket.socket:
    # Bound in a fresh owner-only folder, made 0600, then moved into place:
    # at no moment can another user find the socket with looser permissions.
    folder = tempfile.mkdtemp(prefix=".bind-", dir=os.path.dirname(path))
    staging = os.path.join(folder, "s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(staging)
        os.chmod(staging, 0o600)
        listener.listen(8)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket of an earlier process with this pid
        os.rename(staging, path)
    except BaseException:
        listener.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    return listener


def _same_user(client: socket.socket) -> bool:
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return True  # not Linux: the socket's mode and folder are the guard
    credentials = client.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


_server: LiveServer | None = None
_server_lock = threading.Lock()


def serve_live(*, stores: Iterable[str] | None = None) -> LiveServer:
    """Serve this process's live view to ``python -m async_hooks ps|tree PID``.

    One server per process: a second call returns the first. ``stores``
    limits the stores shown to those names (all by default). Turns runtime
    tracking on (it enables a hook), which the view needs for ids.
    """
    global _server
    with _server_lock:
        if _server is None or _server._closed.is_set():
            _server = LiveServer(stores)
        return _server


# -- the client side -----------------------------------------------------------------


def _request(pid: int, request: str, timeout: float) -> dict[str, Any]:
    path = socket_path(pid)
    if not os.path.exists(path):
        if not _alive(pid):
            raise LiveViewError(f"no process {pid}")
        raise LiveViewError(
            f"process {pid} does not serve a live view (start it with "
            "`python -m async_hooks run --live ...`, or call "
            "async_hooks.diagnostics.serve_live() in it)"
        )
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(path)
        client.sendall(request.encode() + b"\n")
        chunks = []
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionRefusedError, FileNotFoundError):
        if not _alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise LiveViewError(f"process {pid} has exited") from None
        raise LiveViewError(f"process {pid} no longer serves its live view") from None
    except TimeoutError:
        state = " (it is stopped)" if _stopped(pid) else ""
        raise LiveViewError(f"process {pid} did not answer within {timeout:g} s{state}") from None
    finally:
        client.close()
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise LiveViewError(f"process {pid} sent an answer that is not JSON") from None
    if not isinstance(answer, dict) or "pid" not in answer:
        raise LiveViewError(f"process {pid} sent an unexpected answer")
    return answer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X")  # a zombie has exited, only its parent has not reaped it


def _stopped(pid: int) -> bool:
    return _state(pid) in ("T", "t")


def _state(pid: int) -> str:
    """The process's state letter from /proc (``R``, ``S``, ``T``, ``Z``...); '' if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def snapshot(pid: int, *, timeout: float = 3.0) -> dict[str, Any]:
    """The live view of process ``pid`` as data (``{"pid", "argv", "resources": [...]}``)."""
    return _request(pid, "snapshot", timeout)


def list_processes(*, timeout: float = 1.0) -> str:
    """The table of this user's processes that serve a live view."""
    rows = []
    folder = runtime_directory()
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".sock") or not name[:-5].isdigit():
            continue
        pid = int(name[:-5])
        try:
            info = _request(pid, "info", timeout)
        except LiveViewError as error:
            if not _alive(pid):
                continue  # _request removed its stale socket
            rows.append(f"{pid:>8}  ?          {error}")
            continue
        age = time.time() - float(info.get("started", time.time()))
        rows.append(f"{pid:>8}  {age:>8.1f}s  {' '.join(map(str, info.get('argv', [])))}")
    if not rows:
        return f"no process serves a live view (looked in {folder})\n"
    return "     PID    UPTIME  COMMAND\n" + "\n".join(rows) + "\n"


def show_process(pid: int, *, view: str = "ps", timeout: float = 3.0) -> str:
    """``ps``: a table of the process's pending work; ``tree``: its causal/await tree."""
    answer = snapshot(pid, timeout=timeout)
    entries: list[dict[str, Any]] = answer.get("resources", [])
    heading = f"process {pid}: {' '.join(map(str, answer.get('argv', [])))}\n"
    if view == "tree":
        return heading + format_tree(entries)
    return heading + format_table(entries)


def _stores_text(stores: dict[str, str]) -> str:
    return " ".join(f"{name}={value}" for name, value in stores.items())


def format_table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'ID':>7} {'TYPE':<14} {'STATE':<22} {'AGE':>9}  STORES / CREATED AT / AWAITING"]
    for entry in entries:
        ident = "-" if entry["async_id"] is None else str(entry["async_id"])
        age = "" if entry["age"] is None else f"{entry['age']:.3f}s"
        details = [
            _stores_text(entry["stores"]),
            entry.get("creation_site") or "",
            "awaiting " + entry["awaiting"] if entry.get("awaiting") else "",
        ]
        detail = " | ".join(part for part in details if part)
        lines.append(
            f"{ident:>7} {entry['type'][:14]:<14} {entry['state'][:22]:<22} {age:>9}  {detail}"
        )
    return "\n".join(lines) + "\n"


def format_tree(entries: list[dict[str, Any]]) -> str:
    """Each live resource under the one that caused it; finished causes are shown too."""
    nodes: dict[int, dict[str, Any]] = {}
    parent_of: dict[int, int] = {}
    for entry in entries:
        if entry["async_id"] is None:
            continue
        nodes[entry["async_id"]] = entry
        child = entry["async_id"]
        for link in entry["chain"]:
            if "root" in link:
                parent_of.setdefault(child, -1)
                break
            parent_of.setdefault(child, link["async_id"])
            nodes.setdefault(link["async_id"], {**link, "state": "finished", "chain": []})
            child = link["async_id"]
    children: dict[int, list[int]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent if parent in nodes else -1, []).append(child)
    lines = ["top level"]

    def show(ident: int, depth: int) -> None:
        node = nodes[ident]
        text = f"{'  ' * depth}└─ {node['type']} #{ident} [{node.get('state', '')}]"
        if node.get("creation_site"):
            text += f" {node['creation_site']}"
        if node.get("stores"):
            text += f" {{{_stores_text(node['stores'])}}}"
        lines.append(text)
        if node.get("awaiting"):
            lines.append(f"{'  ' * (depth + 1)}   awaiting {node['awaiting']}")
        for child in sorted(children.get(ident, [])):
            show(child, depth + 1)

    for root in sorted(children.get(-1, [])):
        show(root, 1)
    untracked = [entry for entry in entries if entry["async_id"] is None]
    for entry in untracked:
        lines.append(f"  └─ {entry['type']} (untracked) [{entry['state']}]")
    return "\n".join(lines) + "\n"
