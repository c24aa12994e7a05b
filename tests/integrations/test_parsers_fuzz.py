"""Fuzzing of every parser of input from the network or a broker, with Hypothesis.

The request-id header (through the ASGI and WSGI middlewares, called as a
server calls them), the ``baggage`` header (the codec and the middlewares)
and the carriers of task queues: Celery's message headers (through a
``ContextTask`` run as a worker runs it), RQ's job meta (a ``ContextJob``
performed) and Dramatiq's message options (``ContextMiddleware`` around a
message). Whatever arrives, the only outcomes are the documented ones: a value
used, or a value left out with one warning (a log line from servers, a
``StoreSerializationWarning`` from Celery); never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from wsgiref.types import StartResponse

import dramatiq
import redis
from celery import Celery  # type: ignore[import-untyped]  # celery ships no types
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from hypothesis import given, settings
from hypothesis import strategies as st

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.errors import StoreSerializationWarning
from async_hooks.integrations.asgi import RequestContextMiddleware as AsgiMiddleware
from async_hooks.integrations.baggage import (
    MAX_BAGGAGE_BYTES,
    MAX_BAGGAGE_MEMBERS,
    decode_baggage,
    encode_baggage,
)
from async_hooks.integrations.celery import REQUEST_ID_HEADER, STORES_HEADER, ContextTask
from async_hooks.integrations.dramatiq import (
    PARENT_MESSAGE_ID_OPTION,
    REQUEST_ID_OPTION,
    STORES_OPTION,
    ContextMiddleware,
    parent_message_id,
)
from async_hooks.integrations.request_id import is_valid_request_id, request_id
from async_hooks.integrations.rq import (
    PARENT_JOB_ID_META_KEY,
    REQUEST_ID_META_KEY,
    STORES_META_KEY,
    ContextJob,
    parent_job_id,
)
from async_hooks.integrations.wsgi import RequestContextMiddleware as WsgiMiddleware
from async_hooks.propagation import JSON

fuzz_tenant = AsyncLocalStorage[Any](name="fuzz_tenant", crosses=Crossing.REMOTE, serializer=JSON)

TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Header text as servers hand it over: latin-1 of any bytes but CR and LF.
header_text = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=300)
# Pieces that look like baggage, to reach deep into the parser.
baggage_piece = st.sampled_from(
    [",", ";", "=", " ", "\t", "%", "%2", "%zz", "%C3", "%C3%28", "%22", "k", "fuzz_tenant", "é"]
)
baggage_like = st.lists(st.one_of(baggage_piece, header_text), max_size=30).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """The records of the ``async_hooks.integrations`` log during the block."""
    records: list[logging.LogRecord] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Recorder()
    logger = logging.getLogger("async_hooks.integrations")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# -- baggage -------------------------------------------------------------------


@given(st.one_of(header_text, baggage_like))
def test_decoding_any_text_gives_tokens_to_text_and_sentences(header: str) -> None:
    problems: list[object] = []
    decoded = decode_baggage(header, on_skipped=problems.append)
    assert len(decoded) <= MAX_BAGGAGE_MEMBERS
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in decoded.items())
    assert all(isinstance(problem, str) for problem in problems)


members = st.lists(
    st.one_of(
        st.tuples(st.text(TOKEN_ALPHABET, min_size=1, max_size=10), st.text(max_size=20)),
        # Garbage without a ',' stays one list member, malformed or not.
        header_text.map(lambda text: text.replace(",", "")),
    ),
    max_size=12,
)


@given(members)
def test_a_bad_member_never_costs_a_good_one(parts: list[tuple[str, str] | str]) -> None:
    pieces = [encode_baggage({p[0]: p[1]}) if isinstance(p, tuple) else p for p in parts]
    header = ",".join(pieces)
    assert len(header.encode()) <= MAX_BAGGAGE_BYTES  # within the limits: nothing dropped
    # The list decodes as its members one by one, the last of a key winning:
    # a member, malformed or not, changes nothing for the others.
    expected: dict[str, str] = {}
    for piece in pieces:
        for key, value in decode_baggage(piece).items():
            expected.pop(key, None)
            expected[key] = value
    assert decode_baggage(header) == expected
    for part in parts:
        if isinstance(part, tuple):
            assert decode_baggage(encode_baggage({part[0]: part[1]})) == {part[0]: part[1]}


# -- the request id and baggage through the server middlewares -----------------


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [JSON.dumps([request_id.get_store(), fuzz_tenant.get_store()]).encode()]


wsgi = WsgiMiddleware(wsgi_app)

# What one request may log, whatever its headers: a line for its id, one
# for its baggage's syntax (however many members are malformed), and one
# per store of ours whose member does not load (fuzz_tenant here; a bad
# request id member is the id's line).
MOST_LINES_PER_REQUEST = 3


@given(st.none() | header_text, st.none() | st.one_of(header_text, baggage_like))
def test_wsgi_serves_any_headers_with_a_valid_id(incoming: str | None, baggage: str | None) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if incoming is not None:
        environ["HTTP_X_REQUEST_ID"] = incoming
    if baggage is not None:
        environ["HTTP_BAGGAGE"] = baggage
    started: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append(headers)
        return lambda data: None

    with logged() as records:
        body = b"".join(wsgi(environ, start_response))
    chosen, _ = JSON.loads(body.decode())
    assert is_valid_request_id(chosen)
    assert ("X-Request-ID", chosen) in started[0]
    if incoming is not None and is_valid_request_id(incoming):
        assert chosen == incoming
    assert len(records) <= MOST_LINES_PER_REQUEST
    assert all(record.levelno == logging.WARNING for record in records)


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    body = JSON.dumps([request_id.get_store(), fuzz_tenant.get_store()]).encode()
    await send({"type": "http.response.body", "body": body})


asgi = AsgiMiddleware(asgi_app)
header_bytes = st.binary(max_size=200).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from([b"x-request-id", b"baggage"]), header_bytes)))
def test_asgi_serves_any_headers_with_a_valid_id(headers: list[tuple[bytes, bytes]]) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    with logged() as records:
        asyncio.run(asgi(scope, receive, send))
    chosen, _ = JSON.loads(sent[1]["body"].decode())
    assert is_valid_request_id(chosen)
    assert (b"x-request-id", chosen.encode()) in sent[0]["headers"]
    assert len(records) <= MOST_LINES_PER_REQUEST


# -- Celery's message headers --------------------------------------------------

celery_app = Celery("async_hooks_fuzz")


@celery_app.task(base=ContextTask, name="fuzz.seen")  # type: ignore[untyped-decorator]  # celery ships no types
def seen() -> tuple[str | None, Any]:
    return request_id.get_store(), fuzz_tenant.get_store()


stores_header = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["fuzz_tenant", "async_hooks.request_id", "other"]), json_values
    ),
    st.dictionaries(
        st.sampled_from(["fuzz_tenant", "async_hooks.request_id"]), st.text(max_size=30)
    ),
)


@given(st.none() | stores_header, st.none() | json_values)
def test_a_task_runs_whatever_headers_arrive(stores: Any, header_id: Any) -> None:
    headers = {
        key: value
        for key, value in ((STORES_HEADER, stores), (REQUEST_ID_HEADER, header_id))
        if value is not None
    }
    # A worker puts the message's custom headers on the task's request.
    seen.push_request(id="fuzz-1", **headers)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chosen, _ = seen()
    finally:
        seen.pop_request()
    assert chosen is None or is_valid_request_id(chosen)
    if isinstance(header_id, str) and is_valid_request_id(header_id):
        assert chosen == header_id
    assert all(issubclass(w.category, StoreSerializationWarning) for w in caught)
    assert request_id.get_store() is None


def _present(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


def _check_outcome(
    caught: list[warnings.WarningMessage], chosen: str | None, header_id: Any, parent: str | None
) -> None:
    assert chosen is None or is_valid_request_id(chosen)
    if isinstance(header_id, str) and is_valid_request_id(header_id):
        assert chosen == header_id
    assert parent is None or is_valid_request_id(parent)
    assert all(issubclass(w.category, StoreSerializationWarning) for w in caught)
    assert request_id.get_store() is None


def seen_in_job() -> tuple[str | None, str | None]:
    return request_id.get_store(), parent_job_id.get_store()


# Never connected to: creating and performing a job in place talks to no Redis.
_rq_connection = redis.Redis(host="127.0.0.1", port=1)


@given(st.none() | stores_header, st.none() | json_values, st.none() | json_values)
def test_an_rq_job_runs_whatever_meta_arrives(stores: Any, header_id: Any, parent: Any) -> None:
    meta = _present(
        (STORES_META_KEY, stores),
        (REQUEST_ID_META_KEY, header_id),
        (PARENT_JOB_ID_META_KEY, parent),
    )
    job = ContextJob.create(seen_in_job, connection=_rq_connection, meta=meta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen, parent_seen = job.perform()
    _check_outcome(caught, chosen, header_id, parent_seen)


_dramatiq_broker = StubBroker()
_middleware = ContextMiddleware()


@given(st.none() | stores_header, st.none() | json_values, st.none() | json_values)
def test_a_dramatiq_message_is_processed_whatever_options_arrive(
    stores: Any, header_id: Any, parent: Any
) -> None:
    options = _present(
        (STORES_OPTION, stores), (REQUEST_ID_OPTION, header_id), (PARENT_MESSAGE_ID_OPTION, parent)
    )
    message = MessageProxy(
        dramatiq.Message(queue_name="q", actor_name="fuzz", args=(), kwargs={}, options=options)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _middleware.before_process_message(_dramatiq_broker, message)
        try:
            chosen, parent_seen = request_id.get_store(), parent_message_id.get_store()
        finally:
            _middleware.after_process_message(_dramatiq_broker, message)
    _check_outcome(caught, chosen, header_id, parent_seen)
