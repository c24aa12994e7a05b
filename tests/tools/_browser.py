"""Real consumers for the files the tools write: headless Chromium, and speedscope from npm.

Each is installed when missing (Chromium with apt-get, as root; speedscope
with npm into a cache beside the test venvs); a test is skipped, with the
reason, only when that install is impossible here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

SPEEDSCOPE_VERSION = "1.25.0"
_CACHE = Path(__file__).resolve().parents[2] / ".venv" / "npm-tools"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    """The path of a Chromium, installed with apt-get when missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("no Chromium, and apt-get cannot be used here to install it")
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
    installed = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900
    )
    found = shutil.which("chromium")
    if installed.returncode != 0 or found is None:
        pytest.skip(f"apt-get install chromium failed: {installed.stderr[-500:]!r}")
    return found


def run_chromium(
    url: str, profile: Path, *extra: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dump_dom(url: str, profile: Path, budget_ms: int = 5000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    return run_chromium(url, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom").stdout


def speedscope() -> Path:
    """speedscope's release folder (its index.html), installed from npm when missing."""
    release = _CACHE / "node_modules" / "speedscope" / "dist" / "release"
    if (release / "index.html").exists():
        return release
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install speedscope")
    _CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(_CACHE),
         f"speedscope@{SPEEDSCOPE_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0 or not (release / "index.html").exists():
        pytest.skip(f"npm install speedscope failed: {result.stderr[-500:]!r}")
    return release


def open_in_speedscope(trace: Path, workdir: Path) -> str:
    """Load ``trace`` in speedscope, as its own command line does, and return the DOM."""
    loader = workdir / "profile.js"
    encoded = base64.b64encode(trace.read_bytes()).decode()
    loader.write_text(
        f"speedscope.loadFileFromBase64({json.dumps(trace.name)}, {json.dumps(encoded)})"
    )
    url = f"file://{speedscope() / 'index.html'}#localProfilePath={loader}"
    return dump_dom(url, workdir / "chromium-profile")


# -- driving a page: Chromium's DevTools protocol, over aiohttp's WebSocket client -----


class Page:
    """One headless Chromium page driven through the DevTools protocol.

    Collects what the page reports as errors (uncaught exceptions,
    ``console.error``, failed loads) in :attr:`errors`.
    """

    def __init__(self, process: subprocess.Popen[str], socket: Any, session: Any) -> None:
        self._process = process
        self._socket = socket
        self._session = session
        self._next_id = 0
        self.errors: list[str] = []
        self.loaded = False

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        await self._socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._socket.receive_json(), timeout=60)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]
            self._note(message)

    def _note(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(json.dumps(params.get("args", []))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(params["entry"].get("text", "")[:500])
        elif method == "Page.loadEventFired":
            self.loaded = True

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str, *, ready: str = "document.body.dataset.ready") -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await self.evaluate(f"document.readyState === 'complete' && !!({ready})"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{url} never became ready ({ready})")

    async def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` into it, one key at a time."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        for char in text:
            await self.send("Input.dispatchKeyEvent", type="keyDown", text=char, key=char)
            await self.send("Input.dispatchKeyEvent", type="keyUp", key=char)

    async def screenshot(self) -> bytes:
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        await self._socket.close()
        await self._session.close()
        self._process.terminate()
        self._process.wait(timeout=30)
        if self._process.stderr is not None:
            self._process.stderr.close()


async def open_page(profile: Path, width: int = 1200, height: int = 900) -> Page:
    """Start a headless Chromium with a DevTools endpoint and attach to its page."""
    import aiohttp

    process = subprocess.Popen(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    endpoint = None
    deadline = time.monotonic() + 60
    while endpoint is None and time.monotonic() < deadline:
        line = await asyncio.to_thread(process.stderr.readline)
        if not line and process.poll() is not None:
            break
        if "DevTools listening on ws://" in line:
            endpoint = line.split("ws://", 1)[1].split("/", 1)[0]
    if endpoint is None:
        process.kill()
        raise AssertionError("Chromium did not open its DevTools endpoint")
    # Keep reading stderr, so that Chromium never blocks on a full pipe.
    threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
    session = aiohttp.ClientSession()
    async with session.get(f"http://{endpoint}/json/list") as response:
        targets = await response.json(content_type=None)
    page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    socket = await session.ws_connect(page_url, max_msg_size=0)
    return Page(process, socket, session)


def _drain(stream: Any) -> None:
    try:
        while stream.read(65536):
            pass
    except (OSError, ValueError):
        pass  # closed by Page.close()


def non_blank(png: bytes) -> float:
    """The share of pixel bytes of a PNG that are not white (0 for a blank page)."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(png[position + 8 : position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    # Filter bytes and deltas make this a proxy, but a white page is all 0 deltas or 0xFF.
    return sum(1 for byte in raw if byte not in (0, 255)) / max(len(raw), 1)
