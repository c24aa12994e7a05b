"""The tools demo, run with scripts/demo's options, shows what it promises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ._programs import load_trace, tool

DEMO = Path(__file__).resolve().parents[2] / "examples" / "tools_demo.py"


def test_the_demo_finds_the_stall_and_the_leaked_timer_with_their_requests(
    tmp_path: Path,
) -> None:
    shutil.copy(DEMO, tmp_path / "tools_demo.py")
    result = tool(
        "run", "--trace", "demo.trace.json", "--html", "demo.html", "--why-running",
        "--stalls", "100", "--store", "request", "tools_demo.py", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello | report ready | hello | subscribed | hello\n"
    stalls, _, why = result.stderr.partition("async-hooks: at exit")
    (stall,) = [text for text in stalls.split("async-hooks: stall:") if "render_report" in text]
    assert "serve_client()" in stall
    assert "request='req-" in stall
    assert "/report'" in stall
    assert "line 36, in render_report" in stall
    assert "1 dropped unrun when their event loop closed" in why
    assert "created at tools_demo.py:50 handle_path" in why
    assert "/subscribe'" in why
    assert "<- Server" in why  # the chain goes back through the connection to the server
    events = load_trace(tmp_path / "demo.trace.json")
    assert any(event.get("cat") == "stall" for event in events)
    page = (tmp_path / "demo.html").read_text()
    data = json.loads(page.split('<script id="data" type="application/json">', 1)[1]
                      .split("</script>", 1)[0])  # fmt: skip
    assert any("render_report" in stall["args"]["stack"] for stall in data["stalls"])
    assert any(entry["type"] == "TimerHandle" for entry in data["left"])
