"""Views that report which stores they see, and where.

Each view answers with JSON: the request id it sees, the request header the
middleware rewrote, what code on the other side of asgiref's bridges and in
a thread pool sees, and whether an earlier request left a store behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings  # type: ignore[import-untyped]  # Django ships no types
from django.http import (  # type: ignore[import-untyped]  # Django ships no types
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

log = logging.getLogger("shop")

# A store a failing view enters and never leaves: no later request may see it.
leftover = AsyncLocalStorage[str](name="leftover")
# Declared to cross to other services: a W3C baggage header may set it.
region = AsyncLocalStorage[str](name="shop.region", crosses=Crossing.REMOTE, serializer=JSON)
# A store entered on one side of an asgiref bridge and read on the other.
tenant = AsyncLocalStorage[str](name="tenant")

# Started before any request: its worker thread has no request's context, so
# only install() (in wsgi.py and asgi.py) gives each job its submitter's.
POOL = ThreadPoolExecutor(max_workers=1)


def _header(request: Any) -> str | None:
    """The request-id header as the view reads it, under the configured name."""
    options = getattr(settings, "ASYNC_HOOKS_REQUEST_CONTEXT", {})
    value: str | None = request.headers.get(options.get("header_name", "X-Request-ID"))
    return value


def _seen(request: Any) -> dict[str, Any]:
    return {
        "store": request_id.get_store(),
        "header": _header(request),
        "leftover": leftover.get_store(),
        "region": region.get_store(),
        "pool": POOL.submit(request_id.get_store).result(),
    }


async def _read_async() -> list[str | None]:
    await asyncio.sleep(0)
    return [request_id.get_store(), tenant.get_store()]


def _read_sync() -> list[str | None]:
    return [request_id.get_store(), tenant.get_store()]


def _sync_enters_async_reads() -> list[str | None]:
    with tenant.with_scope("from-sync"):
        return async_to_sync(_read_async)()


def sync_view(request: Any) -> JsonResponse:
    log.info("in the sync view")
    seen = _seen(request)
    with tenant.with_scope("from-sync"):
        seen["async_to_sync"] = async_to_sync(_read_async)()
    return JsonResponse(seen)


async def async_view(request: Any) -> JsonResponse:
    log.info("in the async view")
    seen = await sync_to_async(_seen)(request)
    seen["executor"] = await asyncio.get_running_loop().run_in_executor(None, request_id.get_store)
    with tenant.with_scope("from-async"):
        seen["sync_to_async"] = await sync_to_async(_read_sync)()
        seen["sync_to_async_threads"] = await sync_to_async(_read_sync, thread_sensitive=False)()
    # And back: sync code enters a store, async code it calls sees it.
    seen["round_trip"] = await sync_to_async(_sync_enters_async_reads)()
    # asgiref copies what the sync side changed back into the caller's context.
    await sync_to_async(tenant.enter_with)("entered-in-sync")
    seen["after_sync_to_async"] = tenant.get_store()
    return JsonResponse(seen)


def sync_boom(request: Any) -> JsonResponse:
    leftover.enter_with("from-a-failed-request")
    raise RuntimeError("sync boom")


async def async_boom(request: Any) -> JsonResponse:
    leftover.enter_with("from-a-failed-request")
    await asyncio.sleep(0)
    raise RuntimeError("async boom")


def sync_stream(request: Any) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        for _ in range(3):
            yield f"{request_id.get_store()}\n"

    return StreamingHttpResponse(lines())


async def async_stream(request: Any) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[str]:
        for _ in range(3):
            await asyncio.sleep(0)
            yield f"{request_id.get_store()}\n"

    return StreamingHttpResponse(lines())


def bad_request(request: Any) -> HttpResponseBadRequest:
    return HttpResponseBadRequest("no")
