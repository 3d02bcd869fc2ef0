"""A small Flask shop that logs with structlog; its errors show up on OpenReplay's session replay.

Nothing in it knows about OpenTelemetry or OpenReplay: ``opentelemetry-instrument`` loads contrib's
structlog instrumentation and otel-openreplay. Run it as the README says
(``pip install "otel-openreplay[flask,structlog]" gunicorn``)::

    OTEL_SERVICE_NAME=structlog-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=none \\
        opentelemetry-instrument gunicorn --threads 4 --bind 127.0.0.1:8000 examples.structlog_app:app

then ``curl -H 'X-OpenReplay-SessionToken: <token>' http://127.0.0.1:8000/checkout``.

``SHOP_STRUCTLOG_SETUP`` picks one of structlog's documented set-ups (each event reaches OpenTelemetry
once in both, with the event as the message and the other keys as attributes):

* ``native`` (default): structlog's default configuration, printing to the console; contrib's
  ``opentelemetry-instrumentation-structlog`` (in the ``structlog`` extra) sends each event;
* ``stdlib``: structlog through ``logging`` (``LoggerFactory``, ``ProcessorFormatter``), the common
  production set-up: one console handler renders structlog's events and the frameworks' records alike.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import structlog
from flask import Flask, jsonify, request

SETUP = os.environ.get("SHOP_STRUCTLOG_SETUP", "native")
if SETUP == "stdlib":
    timestamper = structlog.processors.TimeStamper(fmt="iso")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    console = logging.StreamHandler()
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, timestamper],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    )
    root = logging.getLogger()
    root.addHandler(console)
    root.setLevel(logging.INFO)
elif SETUP != "native":
    raise SystemExit(f"SHOP_STRUCTLOG_SETUP={SETUP!r}: expected native or stdlib")

app = Flask(__name__)
log = structlog.get_logger("shop.checkout")


@app.get("/checkout")
def checkout() -> tuple[object, int]:
    """A payment that fails: INFO and WARNING events stay in the app; the ERROR event reaches OpenReplay."""
    order = request.args.get("order", "1001")
    log.info("checkout started", order=order)
    log.warning("primary card processor slow, trying the backup", order=order)
    log.error("payment declined: card expired", order=order, card="4242")
    return jsonify(status="declined"), 402


@app.get("/refund")
def refund() -> tuple[object, int]:
    """An error handled in the app and logged with its traceback (``log.exception``)."""
    try:
        raise ConnectionError("refund service unreachable")
    except ConnectionError:
        log.exception("refund failed")
    return jsonify(status="pending"), 503


@app.get("/crash")
def crash() -> object:
    """An unhandled exception: Flask logs it through ``logging``, with its traceback, inside the request."""
    raise RuntimeError("inventory service timed out")


@app.get("/thread")
def in_thread() -> object:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return jsonify(status="queued")


@app.get("/slow")
def slow() -> object:
    """Two errors with a pause between them, so that concurrent requests interleave their records."""
    label = request.args.get("label", "")
    log.error(f"slow step one {label}")
    time.sleep(0.3)
    log.error(f"slow step two {label}")
    return jsonify(status="done")


@app.get("/health")
def health() -> object:
    """Readiness probe, logs nothing."""
    return jsonify(status="ok")
