"""Every Python block of README.md and docs/*.md runs, each in a fresh interpreter.

Each ```` ```python ```` block is written to a file in a temporary directory
and run there with this interpreter (so with the installed package and its
extras), with a timeout; it must exit 0. Whatever docs exist are read, so a
new page is checked as soon as it lands. A block that cannot run on its own
(it needs a broker, or is a fragment of a larger program) says so on the
line just before it, with the reason::

    <!-- not run: needs a Redis broker -->

Keep those few: a block that does not run is a block nobody has checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> Iterator[tuple[Path, int, str, str | None]]:
    """``(document, line of the fence, code, reason it is not run or None)``."""
    for document in documents():
        text = document.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            previous = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
            not_run = _NOT_RUN.search(previous)
            code = textwrap.dedent(match["code"])
            yield document, line, code, None if not_run is None else not_run["reason"]


def _params() -> list[object]:
    params: list[object] = []
    for document, line, code, reason in python_blocks():
        marks = [] if reason is None else [pytest.mark.skip(reason=f"not run: {reason}")]
        name = document.relative_to(ROOT).as_posix()
        params.append(pytest.param(code, id=f"{name}:{line}", marks=marks))
    return params


@pytest.mark.parametrize("code", _params())
def test_the_block_runs(code: str, tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(snippet)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_the_docs_have_blocks_and_few_are_not_run() -> None:
    blocks = list(python_blocks())
    assert len(blocks) >= 20
    not_run = [(document.name, line, reason) for document, line, _, reason in blocks if reason]
    assert len(not_run) <= len(blocks) // 4, not_run
