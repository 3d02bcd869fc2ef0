"""Views and URLs of the example Django shop whose backend errors show up on OpenReplay's replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    DJANGO_SETTINGS_MODULE=examples.django_shop.settings OTEL_SERVICE_NAME=django-shop \\
    OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument gunicorn --bind 127.0.0.1:8000 examples.django_shop.wsgi
"""

from __future__ import annotations

import logging
import threading

import requests
from django.http import HttpRequest, JsonResponse
from django.urls import path

log = logging.getLogger("shop.checkout")


def checkout(request: HttpRequest) -> JsonResponse:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return JsonResponse({"status": "declined"}, status=402)


def crash(request: HttpRequest) -> JsonResponse:
    """An unhandled exception: Django logs "Internal Server Error" at ERROR with its traceback."""
    raise RuntimeError("inventory service timed out")


def in_thread(request: HttpRequest) -> JsonResponse:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return JsonResponse({"status": "queued"})


def call(request: HttpRequest) -> JsonResponse:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    response = requests.get(request.GET["url"], timeout=10)
    return JsonResponse({"downstream": response.status_code})


def health(request: HttpRequest) -> JsonResponse:
    """Readiness probe, logs nothing."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("checkout", checkout),
    path("crash", crash),
    path("thread", in_thread),
    path("call", call),
    path("health", health),
]
