"""Real consumers for the files the tools write: headless Chromium, and speedscope from npm.

Each is installed when missing (Chromium with apt-get, as root; speedscope
with npm into a cache beside the test venvs); a test is skipped, with the
reason, only when that install is impossible here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

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
