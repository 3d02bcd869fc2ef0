"""The example Django shop's views as ``async def`` views, for an ASGI server (uvicorn).

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    DJANGO_SETTINGS_MODULE=examples.django_shop.asgi_settings OTEL_SERVICE_NAME=django-shop \\
    OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument uvicorn examples.django_shop.asgi:application --port 8000
"""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
from django.http import HttpRequest, JsonResponse
from django.urls import path

log = logging.getLogger("shop.checkout")


async def checkout(request: HttpRequest) -> JsonResponse:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return JsonResponse({"status": "declined"}, status=402)


async def crash(request: HttpRequest) -> JsonResponse:
    """An unhandled exception: Django logs "Internal Server Error" at ERROR with its traceback."""
    raise RuntimeError("inventory service timed out")


async def in_task(request: HttpRequest) -> JsonResponse:
    """An error logged by an asyncio task started for the request."""

    async def render() -> None:
        await asyncio.sleep(0)
        log.error("receipt rendering failed in a task")

    await asyncio.create_task(render())
    return JsonResponse({"status": "queued"})


async def in_thread(request: HttpRequest) -> JsonResponse:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    await asyncio.to_thread(worker.join)
    return JsonResponse({"status": "queued"})


async def call(request: HttpRequest) -> JsonResponse:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    async with httpx.AsyncClient() as client:
        response = await client.get(request.GET["url"], timeout=10)
    return JsonResponse({"downstream": response.status_code})


async def health(request: HttpRequest) -> JsonResponse:
    """Readiness probe, logs nothing."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("checkout", checkout),
    path("crash", crash),
    path("task", in_task),
    path("thread", in_thread),
    path("call", call),
    path("health", health),
]
