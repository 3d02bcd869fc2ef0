"""A small Falcon shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    OTEL_SERVICE_NAME=falcon-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument gunicorn --bind 127.0.0.1:8000 examples.falcon_app:app

Falcon writes an unhandled exception to ``wsgi.errors``, not to ``logging``: otel-openreplay logs it
at ERROR, with the request's session, once.
"""

from __future__ import annotations

import logging
import threading

import falcon
import requests

log = logging.getLogger("shop.checkout")


class Checkout:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
        log.info("checkout started")
        log.warning("primary card processor slow, trying the backup")
        log.error("payment declined: card %s expired", "4242")
        resp.status = falcon.HTTP_402
        resp.media = {"status": "declined"}


class Crash:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """An unhandled exception: Falcon answers 500 and writes the traceback to ``wsgi.errors``."""
        raise RuntimeError("inventory service timed out")


class InThread:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """An error logged by a worker thread started for the request."""
        worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
        worker.start()
        worker.join()
        resp.media = {"status": "queued"}


class Call:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Calls another service over HTTP: the session goes along in the request's headers."""
        response = requests.get(req.get_param("url", required=True), timeout=10)
        resp.media = {"downstream": response.status_code}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Readiness probe, logs nothing."""
        resp.media = {"status": "ok"}


app = falcon.App()
app.add_route("/checkout", Checkout())
app.add_route("/crash", Crash())
app.add_route("/thread", InThread())
app.add_route("/call", Call())
app.add_route("/health", Health())
