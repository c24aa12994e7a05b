"""aiohttp: outgoing requests carry the declared stores and the request id.

Built on aiohttp's client tracing: ``on_request_start`` runs in the caller's
task, before the request is built, with the headers it will be built from
(kept for every redirect of that call)::

    aiohttp.ClientSession(trace_configs=[context_trace_config()])

See :mod:`async_hooks.integrations.outgoing` for the headers themselves.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from .outgoing import add_outgoing_headers, check_header_name
from .request_id import DEFAULT_HEADER

__all__ = ["context_trace_config"]


def context_trace_config(*, request_id_header: str = DEFAULT_HEADER) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that adds the context headers to each request of a session."""
    check_header_name(request_id_header)

    async def add_context_headers(
        session: aiohttp.ClientSession,
        trace_context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        add_outgoing_headers(params.headers, request_id_header=request_id_header)

    trace_config = aiohttp.TraceConfig()
    trace_config.on_request_start.append(add_context_headers)
    return trace_config
