"""A small Pyramid shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    OTEL_SERVICE_NAME=pyramid-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument gunicorn --bind 127.0.0.1:8000 examples.pyramid_app:app
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from pyramid.config import Configurator
from pyramid.request import Request

log = logging.getLogger("shop.checkout")


def checkout(request: Request) -> dict[str, Any]:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    request.response.status_code = 402
    return {"status": "declined"}


def crash(request: Request) -> dict[str, Any]:
    """An unhandled exception: gunicorn answers 500 and logs "Error handling request" with its traceback."""
    raise RuntimeError("inventory service timed out")


def in_thread(request: Request) -> dict[str, Any]:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return {"status": "queued"}


def call(request: Request) -> dict[str, Any]:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    response = requests.get(request.params["url"], timeout=10)
    return {"downstream": response.status_code}


def health(request: Request) -> dict[str, Any]:
    """Readiness probe, logs nothing."""
    return {"status": "ok"}


VIEWS = {"checkout": checkout, "crash": crash, "thread": in_thread, "call": call, "health": health}

with Configurator() as config:
    for name, view in VIEWS.items():
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name, renderer="json")
    app = config.make_wsgi_app()
