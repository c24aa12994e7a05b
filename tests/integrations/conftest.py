"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._processes import start_redis, stop


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 for the test module: its URL."""
    process, url = start_redis()
    try:
        yield url
    finally:
        stop(process)
