"""The second service: answers whether an item is in stock.

It receives the request id and the ``customer`` store from the frontend's
headers; its log lines show both without being passed them.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from async_hooks.integrations.asgi import RequestContextMiddleware

from .common import setup_logging

setup_logging("inventory")
log = logging.getLogger("inventory")

app = FastAPI()
app.add_middleware(RequestContextMiddleware)


@app.get("/stock/{item}")
async def stock(item: str) -> dict[str, object]:
    log.info("checking stock of %s", item)
    return {"item": item, "in_stock": True}
