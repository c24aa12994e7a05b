"""What the three processes of the example share: the stores, logging and the Celery app.

The request id is ``async_hooks.integrations.request_id.request_id``: the
ASGI middleware enters it for each request, the outgoing httpx client sends
it to the other service, and ``ContextTask`` carries it to the worker. The
``customer`` store is declared to cross to other services (``REMOTE``), so it
travels as W3C baggage and in the Celery message headers.
"""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery  # type: ignore[import-untyped]  # celery ships no types

from async_hooks import AsyncLocalStorage, Crossing
from async_hooks.integrations.celery import ContextTask
from async_hooks.integrations.logging import StoreFilter
from async_hooks.integrations.request_id import request_id
from async_hooks.propagation import JSON

__all__ = ["BROKER_ENV", "INVENTORY_URL_ENV", "celery_app", "customer", "setup_logging"]

BROKER_ENV = "CROSS_SERVICE_BROKER"
INVENTORY_URL_ENV = "CROSS_SERVICE_INVENTORY_URL"

customer = AsyncLocalStorage[str](name="customer", crosses=Crossing.ALL, serializer=JSON)

# Every task of this app is a ContextTask: the stores that cross REMOTE and
# the request id go with each task, and each run starts from a clean context.
celery_app = Celery(
    "cross_service",
    broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"),
    task_cls=ContextTask,
)
celery_app.conf.update(
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


def setup_logging(service: str) -> None:
    """Log lines to stdout as ``<service> [<request id>] <customer> <message>``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(StoreFilter({"request_id": request_id, "customer": customer}))
    handler.setFormatter(
        logging.Formatter(
            f"{service:<9} [%(request_id)s] customer=%(customer)s %(name)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # The servers' access logs would repeat each request without adding to the story.
    logging.getLogger("uvicorn.access").disabled = True
