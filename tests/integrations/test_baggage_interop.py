"""Our baggage header read by OpenTelemetry's W3CBaggagePropagator, and its header read by us.

Two differences are OpenTelemetry's own, and pinned here so that a change on
either side shows: its Python propagator writes a space as ``+`` (form
encoding; the W3C specification percent-encodes, and reads ``+`` as itself)
and strips whitespace from the ends of the values it reads. It also
percent-encodes keys, which the specification leaves as tokens, so keys that
differ after ``quote_plus`` are left out of the property from its side.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage as otel_baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.baggage import decode_baggage, encode_baggage
from async_hooks.integrations.outgoing import OutgoingPolicy, add_outgoing_headers
from async_hooks.propagation import JSON

propagator = W3CBaggagePropagator()
LOOPBACK = OutgoingPolicy(allowed_hosts=["127.0.0.1"])

# Tokens that OpenTelemetry reads as they are ('%' and '+' it would decode).
TOKEN_ALPHABET = "!#$&'*-.^_`|~" + string.ascii_letters + string.digits
# Keys that it also writes as they are (quote_plus leaves them alone).
PLAIN_KEY_ALPHABET = "-._~" + string.ascii_letters + string.digits
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
# OpenTelemetry strips what str.strip() strips from the values it reads.
unstripped = text.filter(lambda value: value == value.strip())

interop_tenant = AsyncLocalStorage[str](
    name="interop_tenant", crosses=Crossing.REMOTE, serializer=JSON
)


def read_by_opentelemetry(header: str) -> dict[str, object]:
    context = propagator.extract({"baggage": header}, context=Context())
    return dict(otel_baggage.get_all(context))


def written_by_opentelemetry(members: dict[str, str]) -> str:
    context = Context()
    for key, value in members.items():
        context = otel_baggage.set_baggage(key, value, context)
    carrier: dict[str, str] = {}
    propagator.inject(carrier, context)
    return carrier.get("baggage", "")


@given(st.dictionaries(st.text(TOKEN_ALPHABET, min_size=1, max_size=16), unstripped, max_size=8))
def test_our_header_is_read_by_opentelemetry(members: dict[str, str]) -> None:
    assert read_by_opentelemetry(encode_baggage(members)) == members


@given(st.dictionaries(st.text(PLAIN_KEY_ALPHABET, min_size=1, max_size=16), text, max_size=8))
def test_its_header_is_read_by_us(members: dict[str, str]) -> None:
    problems: list[str] = []
    decoded = decode_baggage(written_by_opentelemetry(members), on_skipped=problems.append)
    assert decoded == {key: value.replace(" ", "+") for key, value in members.items()}
    assert problems == []


def test_the_differences_are_opentelemetrys() -> None:
    assert written_by_opentelemetry({"k": "a b+c"}) == "k=a+b%2Bc"
    assert decode_baggage("k=a+b%2Bc") == {"k": "a+b+c"}
    assert decode_baggage(encode_baggage({"k": "a b+c"})) == {"k": "a b+c"}
    assert read_by_opentelemetry(encode_baggage({"k": "a b+c"})) == {"k": "a b+c"}


def test_a_malformed_member_costs_only_itself_on_both_sides() -> None:
    header = "vendor=1,bad key=2,interop_tenant=%22acme%22"
    assert read_by_opentelemetry(header) == {"vendor": "1", "interop_tenant": '"acme"'}
    assert decode_baggage(header) == {"vendor": "1", "interop_tenant": '"acme"'}


def test_opentelemetrys_baggage_and_ours_share_one_header() -> None:
    # A service instrumented with both: its propagator writes first, our
    # client appends; each side reads everything.
    headers = {"baggage": written_by_opentelemetry({"user.plan": "gold"})}
    with interop_tenant.with_scope("acme"):
        add_outgoing_headers(headers, url="http://127.0.0.1/", policy=LOOPBACK)
    assert headers["baggage"] == "user.plan=gold,interop_tenant=%22acme%22"
    assert read_by_opentelemetry(headers["baggage"]) == {
        "user.plan": "gold",
        "interop_tenant": '"acme"',
    }
    assert decode_baggage(headers["baggage"]) == {"user.plan": "gold", "interop_tenant": '"acme"'}
