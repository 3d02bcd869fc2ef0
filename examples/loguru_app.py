"""A small Flask shop that logs with loguru; its errors show up on OpenReplay's session replay.

Nothing in it knows about OpenTelemetry or OpenReplay: ``opentelemetry-instrument`` loads
otel-openreplay, whose loguru bridge sends loguru's records to OpenTelemetry. Run it as the README
says (``pip install "otel-openreplay[flask,loguru]" gunicorn``)::

    OTEL_SERVICE_NAME=loguru-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=none \\
        opentelemetry-instrument gunicorn --threads 4 --bind 127.0.0.1:8000 examples.loguru_app:app

then ``curl -H 'X-OpenReplay-SessionToken: <token>' http://127.0.0.1:8000/checkout``.

``SHOP_LOGURU_SETUP`` picks one of loguru's documented ways to live beside ``logging`` (each record
reaches OpenTelemetry once in every one of them):

* ``alone`` (default): loguru for the app's own records, ``logging`` for the frameworks' (Flask's
  unhandled-exception record, for one);
* ``intercept``: loguru's ``InterceptHandler`` recipe, ``logging`` routed into loguru with
  ``logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)``;
* ``intercept-root``: the same handler set with ``logging.root.handlers = [InterceptHandler()]``, which
  also removes OpenTelemetry's handler from the root logger;
* ``propagate``: loguru's ``PropagateHandler`` recipe, loguru's records handed on to ``logging``.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time

from flask import Flask, jsonify, request
from loguru import logger


class InterceptHandler(logging.Handler):
    """loguru's recipe: a ``logging`` record logged again through loguru, from its original caller."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame:
            filename = frame.f_code.co_filename
            is_logging = filename == logging.__file__
            is_frozen = "importlib" in filename and "_bootstrap" in filename
            if depth > 0 and not (is_logging or is_frozen):
                break
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


class PropagateHandler(logging.Handler):
    """loguru's recipe: a loguru record handed on to the ``logging`` logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


SETUP = os.environ.get("SHOP_LOGURU_SETUP", "alone")
if SETUP == "intercept":
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
elif SETUP == "intercept-root":
    logging.root.handlers = [InterceptHandler()]
    logging.root.setLevel(logging.INFO)
elif SETUP == "propagate":
    logger.add(PropagateHandler(), format="{message}")
elif SETUP != "alone":
    raise SystemExit(f"SHOP_LOGURU_SETUP={SETUP!r}: expected alone, intercept, intercept-root or propagate")

app = Flask(__name__)


@app.get("/checkout")
def checkout() -> tuple[object, int]:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log = logger.bind(order=request.args.get("order", "1001"))
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card {} expired", "4242")
    return jsonify(status="declined"), 402


@app.get("/refund")
def refund() -> tuple[object, int]:
    """An error handled in the app and logged with its traceback (``logger.exception``)."""
    try:
        raise ConnectionError("refund service unreachable")
    except ConnectionError:
        logger.exception("refund failed")
    return jsonify(status="pending"), 503


@app.get("/crash")
def crash() -> object:
    """An unhandled exception: Flask logs it through ``logging``, with its traceback, inside the request."""
    raise RuntimeError("inventory service timed out")


@app.get("/thread")
def in_thread() -> object:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: logger.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return jsonify(status="queued")


@app.get("/slow")
def slow() -> object:
    """Two errors with a pause between them, so that concurrent requests interleave their records."""
    label = request.args.get("label", "")
    logger.error("slow step one {}", label)
    time.sleep(0.3)
    logger.error("slow step two {}", label)
    return jsonify(status="done")


@app.get("/health")
def health() -> object:
    """Readiness probe, logs nothing."""
    return jsonify(status="ok")
