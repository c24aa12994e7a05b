"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from async_hooks.integrations.outgoing import OutgoingPolicy, set_outgoing_policy


@pytest.fixture
def loopback_allowed() -> Iterator[None]:
    """Stores may go to 127.0.0.1 for the test (by default they go to no host).

    For tests whose servers are their own; test_outgoing_policy.py tests
    the default.
    """
    previous = set_outgoing_policy(OutgoingPolicy(allowed_hosts=["127.0.0.1"]))
    try:
        yield
    finally:
        set_outgoing_policy(previous)
