"""A Celery worker for the shop: its task errors show up on the replay of the session that ordered.

A web request carrying the session enqueues the tasks (the Flask example's ``POST /order``);
``opentelemetry-instrumentation-celery`` carries the session in the task message, and otel-openreplay,
loaded by ``opentelemetry-instrument``, tags the worker's records with it and keeps them leaving the
worker in spite of Celery's logging setup: ``send_receipt`` and ``charge_card`` know nothing about
OpenReplay. Run it as the README says::

    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 OTEL_SERVICE_NAME=shop-worker \\
        opentelemetry-instrument celery -A examples.celery_app.celery_app worker --pool solo

A task that ``celery beat`` sends has no session (no request sent it). ``retry_declined_payments``,
sent by beat every ``SHOP_RETRY_EVERY`` seconds, works on behalf of the sessions whose payments were
declined: ``charge_card`` stores the session with the declined order, and the retry runs each order
inside ``otel_openreplay.session(...)``, so its error lands on the replay of the session that ordered::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 OTEL_SERVICE_NAME=shop-beat \\
        opentelemetry-instrument celery -A examples.celery_app.celery_app beat -s /tmp/shop-beat-schedule

The app is named ``celery_app``: ``celery -A examples.flask_app`` would pick the Flask ``app`` instead.
The declined orders are kept in a Redis hash next to the broker's queues, to keep the example small.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from celery.utils.log import get_task_logger

import otel_openreplay

BROKER_ENV = "CELERY_BROKER_URL"
"""Where the broker is; the web app, the worker and beat must read the same."""

RETRY_EVERY_ENV = "SHOP_RETRY_EVERY"
"""Seconds between two retries of the declined payments (beat's schedule); 60 unless set."""

MAIL_SERVER_SECONDS = 0.2
"""How long the (pretend) mail server takes to answer: in the threads and gevent pools, the tasks of
several sessions run at once."""

DECLINED = "shop:declined-payments"
"""The Redis hash of declined orders: order number -> the ordering session's token (or id)."""

broker_url = os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0")
celery_app = Celery("shop", broker=broker_url)
celery_app.conf.broker_connection_retry_on_startup = True  # says so instead of warning about the default
celery_app.conf.beat_schedule = {
    "retry-declined-payments": {
        "task": "shop.retry_declined_payments",
        "schedule": float(os.environ.get(RETRY_EVERY_ENV, "60")),
    },
}
log = get_task_logger("shop.receipts")
payments_log = get_task_logger("shop.payments")


def _store() -> redis.Redis:
    return redis.Redis.from_url(broker_url, decode_responses=True)


@celery_app.task(name="shop.send_receipt")
def send_receipt(order: str) -> None:
    """Logs an ERROR with Celery's task logger: the record reaches OpenReplay with the ordering session."""
    time.sleep(MAIL_SERVER_SECONDS)
    log.error("receipt mail for order %s bounced", order)


@celery_app.task(name="shop.charge_card")
def charge_card(order: str) -> None:
    """Raises: Celery's own "Task ... raised unexpected" record reaches OpenReplay with the session.

    The declined order is kept with its session (if any), for :func:`retry_declined_payments`.
    """
    session = otel_openreplay.current_session()
    if session is not None:
        _store().hset(DECLINED, order, session.token or session.id or "")
    raise RuntimeError(f"card processor rejected order {order}")


@celery_app.task(name="shop.retry_declined_payments")
def retry_declined_payments() -> None:
    """Sent by beat: retries each declined order once, inside the session that placed it."""
    store = _store()
    for order, stored in store.hgetall(DECLINED).items():
        if not store.hdel(DECLINED, order):
            continue  # another worker took it
        session = str(stored)
        token, session_id = (None, session) if session.isdigit() else (session, None)
        with otel_openreplay.session(token=token, session_id=session_id):
            payments_log.error("retried payment for order %s declined again", order)
