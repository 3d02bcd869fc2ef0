"""A small Flask shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay, which reads
the session header of each request and tags every log record of it. Run it as the README says::

    OTEL_SERVICE_NAME=flask-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument gunicorn --bind 127.0.0.1:8000 examples.flask_app:app

then ``curl -H 'X-OpenReplay-SessionToken: <token>' http://127.0.0.1:8000/checkout``. ``POST /order``
hands work to the Celery worker of ``examples/celery_app.py`` (it needs ``otel-openreplay[celery]``
and ``CELERY_BROKER_URL``; the other routes do not).

The shop's frontend (``examples/frontend``) runs on another origin: flask-cors answers the browser's
preflight, allowing the session headers for the origins listed in ``SHOP_FRONTEND_ORIGINS``.
"""

from __future__ import annotations

import logging
import os
import threading

import requests
from flask import Flask, jsonify, request
from flask_cors import CORS

app = Flask(__name__)
# The browser sends the session header cross-origin only if the preflight's answer allows it.
CORS(
    app,
    origins=os.environ.get("SHOP_FRONTEND_ORIGINS", "http://localhost:8080").split(","),
    allow_headers=["Content-Type", "X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token", "openReplaySession.id"],
)
log = logging.getLogger("shop.checkout")


@app.get("/checkout")
def checkout() -> tuple[object, int]:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return jsonify(status="declined"), 402


@app.get("/crash")
def crash() -> object:
    """An unhandled exception: Flask logs it at ERROR with its traceback, still inside the request."""
    raise RuntimeError("inventory service timed out")


@app.get("/thread")
def in_thread() -> object:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return jsonify(status="queued")


@app.get("/call")
def call() -> object:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    response = requests.get(request.args["url"], timeout=10)
    return jsonify(downstream=response.status_code)


@app.post("/order")
def order() -> tuple[object, int]:
    """Enqueues the order's Celery tasks: the worker's errors carry this request's session."""
    from examples.celery_app import charge_card, send_receipt  # only this route needs Celery

    number = request.args.get("order", "1001")
    send_receipt.delay(number)
    charge_card.delay(number)
    return jsonify(status="accepted", order=number), 202


@app.get("/health")
def health() -> object:
    """Readiness probe, logs nothing."""
    return jsonify(status="ok")
