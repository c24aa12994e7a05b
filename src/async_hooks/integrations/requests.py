"""requests: outgoing requests carry the declared stores and the request id.

Built on requests' transport adapter: ``HTTPAdapter.add_headers`` is the hook
requests provides to subclasses for adding headers, and it runs in the
calling thread, just before the request is sent, for every request of the
session (redirects included)::

    session = instrument_requests(requests.Session())

``ContextAdapter`` takes every argument of ``HTTPAdapter`` (``max_retries``,
pool sizes), so a session that mounts its own adapters mounts this one
instead. See :mod:`async_hooks.integrations.outgoing` for the headers.
"""

from __future__ import annotations

from typing import Any

from .._extras import missing_extra

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError as error:
    raise missing_extra(__name__, "requests", extra="requests") from error

from .._validation import describe
from ..errors import InvalidArgTypeError
from .outgoing import add_outgoing_headers
from .request_id import DEFAULT_HEADER, check_header_name

__all__ = ["ContextAdapter", "instrument_requests"]


class ContextAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that adds the context headers to each request it sends."""

    def __init__(self, *, request_id_header: str = DEFAULT_HEADER, **adapter_options: Any) -> None:
        self.request_id_header = check_header_name(request_id_header)
        super().__init__(**adapter_options)

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        super().add_headers(request, **kwargs)
        add_outgoing_headers(request.headers, request_id_header=self.request_id_header)


def instrument_requests(
    session: requests.Session,
    *,
    request_id_header: str = DEFAULT_HEADER,
    **adapter_options: Any,
) -> requests.Session:
    """Mount a ``ContextAdapter`` on ``session`` for ``http://`` and ``https://``.

    ``adapter_options`` go to ``HTTPAdapter`` (``max_retries=...``,
    ``pool_maxsize=...``). Returns the session.
    """
    if not isinstance(session, requests.Session):
        raise InvalidArgTypeError(
            f'The "session" argument must be a requests.Session. Received {describe(session)}'
        )
    adapter = ContextAdapter(request_id_header=request_id_header, **adapter_options)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
