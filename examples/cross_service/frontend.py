"""The service users call: it asks the inventory service, then queues a Celery task.

The handler never passes the request id or the customer along: the
middleware, the httpx client and ContextTask carry them.
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx
from fastapi import FastAPI

from async_hooks.integrations.asgi import RequestContextMiddleware
from async_hooks.integrations.httpx import instrument_httpx
from async_hooks.integrations.outgoing import OutgoingPolicy

from .common import INVENTORY_URL_ENV, customer, setup_logging
from .tasks import send_receipt

setup_logging("frontend")
log = logging.getLogger("frontend")

app = FastAPI()
app.add_middleware(RequestContextMiddleware)
# The stores go only to hosts we allow: here the inventory service, on loopback.
INVENTORY = OutgoingPolicy(allowed_hosts=["127.0.0.1"])


@app.post("/orders/{item}")
async def place_order(item: str, customer_name: str) -> dict[str, object]:
    with customer.with_scope(customer_name):
        log.info("order received for %s", item)
        async with instrument_httpx(httpx.AsyncClient(), policy=INVENTORY) as inventory:
            response = await inventory.get(f"{os.environ[INVENTORY_URL_ENV]}/stock/{item}")
        response.raise_for_status()
        # Publishing blocks on Redis: keep it off the event loop. to_thread
        # runs it in a copy of this context, so the task still gets our stores.
        await asyncio.to_thread(send_receipt.delay, item)
        log.info("receipt queued")
        return {"item": item, "in_stock": response.json()["in_stock"]}
