"""The headers an outgoing HTTP request carries so that the next service has our context.

Two headers, read back by the server middlewares of this package:

* ``baggage`` (W3C): every store whose policy includes ``Crossing.REMOTE``
  and that has a value here, serialized with its own serializer (except the
  request id, which has its own header), sent only to the hosts that the
  outgoing policy allows;
* ``X-Request-ID`` (or the name you choose): the current request id, sent to
  every host unless the policy says otherwise.

The client integrations (httpx, requests, aiohttp) call
:func:`add_outgoing_headers` from their library's own extension point, once
for each request they send, redirects included; any other client can call it
too, on whatever mutable headers mapping it has::

    set_outgoing_policy(OutgoingPolicy(allowed_hosts=["api.internal", "*.svc.cluster.local"]))
    add_outgoing_headers(headers, url="https://api.internal/orders")
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._validation import describe, require_callable
from ..errors import InvalidArgTypeError, InvalidArgValueError, InvalidBaggageError
from ._carrier import outgoing_carrier
from .baggage import BAGGAGE_HEADER, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, encode_baggage
from .request_id import DEFAULT_HEADER, check_header_name, request_id

__all__ = [
    "OutgoingPolicy",
    "add_outgoing_headers",
    "get_outgoing_policy",
    "outgoing_headers",
    "set_outgoing_policy",
]

# A host name, an IPv4 address or an IPv6 address (brackets optional), with
# an optional leading "*." wildcard label; or "*" alone.
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9_~%-]+(\.[a-z0-9_~%-]+)*|\[?[0-9a-f:.]+\]?")


@dataclass(frozen=True, slots=True)
class OutgoingPolicy:
    """Which hosts an outgoing request may carry our context to.

    ``allowed_hosts``: host names or addresses, compared without case and
    without port; ``"*.example.com"`` matches every name under
    ``example.com`` (not ``example.com`` itself), and ``"*"`` every host.
    ``allow``: a predicate on the request's full URL; a host is allowed when
    it matches a pattern or ``allow(url)`` is true. The stores (``baggage``)
    go only to allowed hosts. The request id goes to every host when
    ``request_id_everywhere`` is true (the default), else only to allowed
    hosts too.

    The default policy allows no host: stores often hold user data (a
    tenant, a user, a plan), and a client that calls a third-party API must
    not hand it over because someone declared a store. The request id is a
    random token that names a request, not a person, and a partner's support
    can use it; it goes everywhere unless ``request_id_everywhere=False``.
    """

    allowed_hosts: Iterable[str] = ()
    allow: Callable[[str], bool] | None = None
    request_id_everywhere: bool = True

    def __post_init__(self) -> None:
        hosts = self.allowed_hosts
        # A bare str is an iterable of one-letter hosts: always a mistake.
        if isinstance(hosts, str | bytes) or not isinstance(hosts, Iterable):
            raise InvalidArgTypeError(
                'The "allowed_hosts" argument must be an iterable of host names. '
                f"Received {describe(hosts)}"
            )
        normalized = tuple(_normalized_pattern(host) for host in hosts)
        object.__setattr__(self, "allowed_hosts", normalized)
        if self.allow is not None:
            require_callable(self.allow, "allow")
        if not isinstance(self.request_id_everywhere, bool):
            raise InvalidArgTypeError(
                'The "request_id_everywhere" argument must be of type bool. '
                f"Received {describe(self.request_id_everywhere)}"
            )

    def allows(self, url: str) -> bool:
        """True when a request to ``url`` may carry the stores.

        A URL without a host, or one that does not parse, is not allowed.
        """
        host = _host_of(url)
        if host is None:
            return False
        for pattern in self.allowed_hosts:
            if pattern == "*" or pattern == host:
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        allow = self.allow
        return allow is not None and bool(allow(url))


def _normalized_pattern(host: object) -> str:
    if not isinstance(host, str):
        raise InvalidArgTypeError(f"Allowed hosts must be str. Received {describe(host)}")
    pattern = host.strip().lower().rstrip(".")
    if _HOST_PATTERN.fullmatch(pattern) is None:
        raise InvalidArgValueError(
            f"{host!r} is not a host pattern: a host name or address without scheme, "
            'port or path, "*.domain" or "*"'
        )
    return pattern.strip("[]")


def _host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


_policy = OutgoingPolicy()


def set_outgoing_policy(policy: OutgoingPolicy) -> OutgoingPolicy:
    """Make ``policy`` the one of every client not given its own; returns the previous one.

    Read by each request when it is sent, so clients instrumented before the
    call follow it too.
    """
    global _policy
    if not isinstance(policy, OutgoingPolicy):
        raise InvalidArgTypeError(
            f'The "policy" argument must be an OutgoingPolicy. Received {describe(policy)}'
        )
    previous, _policy = _policy, policy
    return previous


def get_outgoing_policy() -> OutgoingPolicy:
    """The policy of every client not given its own (by default, stores go to no host)."""
    return _policy


def _check_policy(policy: object) -> OutgoingPolicy | None:
    """``policy`` when it is None or an ``OutgoingPolicy``, else a clear error.

    The client integrations check theirs once, when they are set up.
    """
    if policy is not None and not isinstance(policy, OutgoingPolicy):
        raise InvalidArgTypeError(
            f'The "policy" argument must be an OutgoingPolicy or None. Received {describe(policy)}'
        )
    return policy


def outgoing_headers(
    *, url: str, request_id_header: str = DEFAULT_HEADER, policy: OutgoingPolicy | None = None
) -> dict[str, str]:
    """The context headers for a request to ``url`` sent now; empty when there is nothing to carry.

    ``policy`` (default: the global one, see :func:`set_outgoing_policy`)
    decides what goes to ``url``'s host. Raises ``StoreSerializationError``
    when a store's value cannot be serialized (and its policy says "raise"),
    ``InvalidBaggageError`` when the stores do not fit in a baggage header (a
    store name that is not an HTTP token, more than 8192 bytes or 64
    members).
    """
    if request_id_header is not DEFAULT_HEADER:
        check_header_name(request_id_header)
    chosen = _check_policy(policy) or _policy
    if chosen.allows(url):
        return outgoing_carrier(BAGGAGE_HEADER, request_id_header, _baggage)
    if chosen.request_id_everywhere and (current := request_id.get_store()) is not None:
        return {request_id_header: current}
    return {}


def _baggage(stores: dict[str, str]) -> str:
    return _encode_members(tuple(stores.items()))


@functools.lru_cache(maxsize=256)
def _encode_members(members: tuple[tuple[str, str], ...]) -> str:
    # The same few store values go out again and again (every call a request
    # makes, every request of a tenant); their texts are immutable str, so the
    # encoded header can be reused safely. Errors are raised, never cached.
    return encode_baggage(dict(members))


def add_outgoing_headers(
    headers: MutableMapping[str, str],
    *,
    url: str,
    request_id_header: str = DEFAULT_HEADER,
    policy: OutgoingPolicy | None = None,
) -> None:
    """Add the context headers for a request to ``url`` to ``headers``, a case-insensitive mapping.

    What the caller set explicitly is kept: a request id header already
    there wins, and our baggage members are appended after an existing
    ``baggage`` header (W3C keeps both; for a key in both, ours comes last,
    which is the one the middlewares of this package use). Calling it again
    on the same headers, as clients do for each redirect, adds nothing; and
    when a redirect leads to a host that ``policy`` does not allow, what an
    earlier call added (found by its value) is taken out again.
    """
    chosen = _check_policy(policy) or _policy
    if request_id_header is not DEFAULT_HEADER:
        check_header_name(request_id_header)
    if not chosen.allows(url):
        _remove_ours(headers, request_id_header, chosen)
        if chosen.request_id_everywhere:
            current = request_id.get_store()
            if current is not None and request_id_header not in headers:
                headers[request_id_header] = current
        return
    ours = outgoing_carrier(BAGGAGE_HEADER, request_id_header, _baggage)
    baggage = ours.pop(BAGGAGE_HEADER, None)
    if baggage is not None:
        existing = headers.get(BAGGAGE_HEADER)
        if not existing:
            headers[BAGGAGE_HEADER] = baggage
        elif existing != baggage and not existing.endswith("," + baggage):
            headers[BAGGAGE_HEADER] = _combined(existing, baggage)
    for name, value in ours.items():
        if name not in headers:
            headers[name] = value


def _combined(existing: str, baggage: str) -> str:
    combined = f"{existing},{baggage}"
    # Ours come last, so they are what a receiver would drop: refuse here
    # instead, where the caller can see it.
    if len(combined) > MAX_BAGGAGE_BYTES:
        raise InvalidBaggageError(
            f"Baggage would be {len(combined)} bytes with the header already on the "
            f"request; the W3C limit is {MAX_BAGGAGE_BYTES}"
        )
    members = sum(1 for member in combined.split(",") if member.strip(" \t"))
    if members > MAX_BAGGAGE_MEMBERS:
        raise InvalidBaggageError(
            f"Baggage would have {members} members with the header already on the "
            f"request; the W3C limit is {MAX_BAGGAGE_MEMBERS}"
        )
    return combined


def _remove_ours(
    headers: MutableMapping[str, str], request_id_header: str, policy: OutgoingPolicy
) -> None:
    """Take out what an earlier call added, for a redirect to a host not allowed.

    Clients copy a request's headers into the redirected request; the caller's
    own headers stay, ours are recognised by their value (this context's).
    """
    existing = headers.get(BAGGAGE_HEADER)
    if existing:
        stores = outgoing_carrier(BAGGAGE_HEADER, request_id_header, _baggage)
        baggage = stores.get(BAGGAGE_HEADER)
        if baggage is not None:
            if existing == baggage:
                del headers[BAGGAGE_HEADER]
            elif existing.endswith("," + baggage):
                headers[BAGGAGE_HEADER] = existing[: -len(baggage) - 1]
    if not policy.request_id_everywhere:
        current = request_id.get_store()
        if current is not None and headers.get(request_id_header) == current:
            del headers[request_id_header]
