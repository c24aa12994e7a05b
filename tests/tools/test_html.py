"""``--html``: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from ._browser import non_blank, open_page
from ._programs import tool, write

SERVICE = """
import asyncio, time
from async_hooks import AsyncLocalStorage

request = AsyncLocalStorage(name="request")

def forgotten():
    pass

async def child():
    await asyncio.sleep(0.001)

async def handle(i):
    await asyncio.sleep(0.002)
    await asyncio.gather(child(), child())
    if i == 3:
        time.sleep(0.3)  # blocks the loop
    if i == 5:
        asyncio.get_running_loop().call_later(3600, forgotten)

async def main():
    await asyncio.gather(*(request.run(f"req-{i}", handle, i) for i in range(8)))

asyncio.run(main())
"""


def test_the_page_loads_filters_and_draws(tmp_path: Path) -> None:
    write(tmp_path / "service.py", SERVICE)
    result = tool(
        "run", "--html", "report.html", "--stalls", "150", "--store", "request", "service.py",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page_text = (tmp_path / "report.html").read_text()
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page_text)
    assert asyncio.run(_check_page(tmp_path)) is None


async def _check_page(tmp_path: Path) -> None:
    page = await open_page(tmp_path / "chromium-profile")
    try:
        await page.open((tmp_path / "report.html").as_uri())
        total = await page.evaluate("document.querySelectorAll('#resources tbody tr').length")
        assert total > 40
        stalls = await page.evaluate(
            "[...document.querySelectorAll('#stalls tr.stall')].map(r => r.textContent)"
        )
        # One stall, unless a loaded machine descheduled another step past 150 ms.
        (stall_text,) = [text for text in stalls if "time.sleep(0.3)" in text]
        assert "req-3" in stall_text
        left = await page.evaluate("document.querySelector('#left-running').textContent")
        assert "TimerHandle" in left
        assert "req-5" in left

        await page.type_text("#filter", "req-5")
        shown = await page.evaluate(
            "[...document.querySelectorAll('#resources tbody tr')].map(r => r.textContent)"
        )
        # The request's whole tree: its task, its sleeps, its children, its timer.
        assert 5 <= len(shown) < total
        assert not any(re.search(r"req-[0-46-9]'", row) for row in shown)  # no other request
        # What the request's code caused outside its run() scope (a done callback) has no
        # store of its own, but belongs to the tree.
        assert sum("req-5" in row for row in shown) >= len(shown) - 2
        assert any("TimerHandle" in row for row in shown)
        count = await page.evaluate("document.getElementById('match-count').textContent")
        assert count.startswith(f"{len(shown)} of ")
        filtered = await page.evaluate(
            "[...document.querySelectorAll('#stalls tr.stall')].map(r => r.textContent)"
        )
        assert not any("time.sleep(0.3)" in text for text in filtered)  # req-3's stall

        png = await page.screenshot()
        assert non_blank(png) > 0.01
        (tmp_path / "report.png").write_bytes(png)
        assert page.errors == []
    finally:
        await page.close()
