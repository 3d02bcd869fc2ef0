"""A Celery worker for the shop: its task errors show up on the replay of the session that ordered.

Nothing in it knows about OpenReplay. A web request carrying the session enqueues the tasks (the Flask
example's ``POST /order``); ``opentelemetry-instrumentation-celery`` carries the session in the task
message, and otel-openreplay, loaded by ``opentelemetry-instrument``, tags the worker's records with it
and keeps them leaving the worker in spite of Celery's logging setup. Run it as the README says::

    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 OTEL_SERVICE_NAME=shop-worker \\
        opentelemetry-instrument celery -A examples.celery_app.celery_app worker --pool solo

The app is named ``celery_app``: ``celery -A examples.flask_app`` would pick the Flask ``app`` instead.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.utils.log import get_task_logger

BROKER_ENV = "CELERY_BROKER_URL"
"""Where the broker is; the web app and the worker must read the same."""

celery_app = Celery("shop", broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"))
celery_app.conf.broker_connection_retry_on_startup = True  # says so instead of warning about the default
log = get_task_logger("shop.receipts")


@celery_app.task(name="shop.send_receipt")
def send_receipt(order: str) -> None:
    """Logs an ERROR with Celery's task logger: the record reaches OpenReplay with the ordering session."""
    log.error("receipt mail for order %s bounced", order)


@celery_app.task(name="shop.charge_card")
def charge_card(order: str) -> None:
    """Raises: Celery's own "Task ... raised unexpected" record reaches OpenReplay with the session."""
    raise RuntimeError(f"card processor rejected order {order}")
