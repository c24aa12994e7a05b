"""The Celery task of the example; the worker runs ``celery -A cross_service.tasks worker``."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging as celery_setup_logging  # type: ignore[import-untyped]

from .common import celery_app, setup_logging

log = logging.getLogger("worker")


@celery_setup_logging.connect  # type: ignore[untyped-decorator]
def use_the_example_logging(**_: Any) -> None:
    # Connecting this signal tells Celery to leave logging to us.
    setup_logging("worker")


def _send_receipt(item: str) -> None:
    log.info("sending the receipt for %s", item)


send_receipt: Any = celery_app.task(name="cross_service.send_receipt")(_send_receipt)
