"""A small Starlette shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    OTEL_SERVICE_NAME=starlette-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument uvicorn examples.starlette_app:app --port 8000
"""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("shop.checkout")


async def checkout(request: Request) -> JSONResponse:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return JSONResponse({"status": "declined"}, status_code=402)


async def crash(request: Request) -> JSONResponse:
    """An unhandled exception: uvicorn logs it after the request's context has been detached."""
    raise RuntimeError("inventory service timed out")


async def in_task(request: Request) -> JSONResponse:
    """An error logged by an asyncio task started for the request."""

    async def render() -> None:
        await asyncio.sleep(0)
        log.error("receipt rendering failed in a task")

    await asyncio.create_task(render())
    return JSONResponse({"status": "queued"})


async def in_thread(request: Request) -> JSONResponse:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    await asyncio.to_thread(worker.join)
    return JSONResponse({"status": "queued"})


async def call(request: Request) -> JSONResponse:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    async with httpx.AsyncClient() as client:
        response = await client.get(request.query_params["url"], timeout=10)
    return JSONResponse({"downstream": response.status_code})


async def health(request: Request) -> JSONResponse:
    """Readiness probe, logs nothing."""
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/checkout", checkout),
        Route("/crash", crash),
        Route("/task", in_task),
        Route("/thread", in_thread),
        Route("/call", call),
        Route("/health", health),
    ]
)
