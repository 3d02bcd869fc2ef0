"""A small FastAPI shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it as
the README says::

    OTEL_SERVICE_NAME=fastapi-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument uvicorn examples.fastapi_app:app --port 8000

An unhandled exception here is logged by uvicorn ("Exception in ASGI application") after the request's
context is gone; otel-openreplay still puts the session on it.

The shop's frontend (``examples/frontend``) runs on another origin: Starlette's ``CORSMiddleware`` answers
the browser's preflight, allowing the session headers for the origins listed in ``SHOP_FRONTEND_ORIGINS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

app = FastAPI()
# The browser sends the session header cross-origin only if the preflight's answer allows it.
app.add_middleware(
    CORSMiddleware,
    allow_origins=os.environ.get("SHOP_FRONTEND_ORIGINS", "http://localhost:8080").split(","),
    allow_methods=["GET", "POST"],
    allow_headers=["Content-Type", "X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token", "openReplaySession.id"],
)
log = logging.getLogger("shop.checkout")


@app.get("/checkout")
async def checkout() -> JSONResponse:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return JSONResponse({"status": "declined"}, status_code=402)


@app.get("/crash")
async def crash() -> None:
    """An unhandled exception: uvicorn logs it after the request's context has been detached."""
    raise RuntimeError("inventory service timed out")


@app.get("/task")
async def in_task() -> dict[str, str]:
    """An error logged by an asyncio task started for the request."""

    async def render() -> None:
        await asyncio.sleep(0)
        log.error("receipt rendering failed in a task")

    await asyncio.create_task(render())
    return {"status": "queued"}


@app.get("/thread")
async def in_thread() -> dict[str, str]:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    worker.join()
    return {"status": "queued"}


@app.get("/call")
async def call(url: str) -> dict[str, int]:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url, timeout=10)
    return {"downstream": response.status_code}


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness probe, logs nothing."""
    return {"status": "ok"}
