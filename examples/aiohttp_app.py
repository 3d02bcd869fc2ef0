"""A small aiohttp shop whose backend errors show up on OpenReplay's session replay.

Nothing in it knows about OpenReplay: ``opentelemetry-instrument`` loads otel-openreplay. Run it with
aiohttp's own server, as the README says::

    OTEL_SERVICE_NAME=aiohttp-shop OTEL_LOGS_EXPORTER=console OTEL_TRACES_EXPORTER=console \\
        opentelemetry-instrument python -m aiohttp.web -H 127.0.0.1 -P 8000 examples.aiohttp_app:make_app

The aiohttp server instrumentation makes its span current in the handler but not the context it
extracted from the request: otel-openreplay finds the session through that span.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import aiohttp
from aiohttp import web

log = logging.getLogger("shop.checkout")
routes = web.RouteTableDef()


@routes.get("/checkout")
async def checkout(request: web.Request) -> web.Response:
    """A payment that fails: INFO and WARNING records stay in the app; the ERROR record reaches OpenReplay."""
    log.info("checkout started")
    log.warning("primary card processor slow, trying the backup")
    log.error("payment declined: card %s expired", "4242")
    return web.json_response({"status": "declined"}, status=402)


@routes.get("/crash")
async def crash(request: web.Request) -> web.Response:
    """An unhandled exception: aiohttp answers 500 and logs "Error handling request"."""
    raise RuntimeError("inventory service timed out")


@routes.get("/task")
async def in_task(request: web.Request) -> web.Response:
    """An error logged by an asyncio task started for the request."""

    async def render() -> None:
        await asyncio.sleep(0)
        log.error("receipt rendering failed in a task")

    await asyncio.create_task(render())
    return web.json_response({"status": "queued"})


@routes.get("/thread")
async def in_thread(request: web.Request) -> web.Response:
    """An error logged by a worker thread started for the request."""
    worker = threading.Thread(target=lambda: log.error("receipt rendering failed"), name="receipts")
    worker.start()
    await asyncio.to_thread(worker.join)
    return web.json_response({"status": "queued"})


@routes.get("/call")
async def call(request: web.Request) -> web.Response:
    """Calls another service over HTTP: the session goes along in the request's headers."""
    async with aiohttp.ClientSession() as client, client.get(request.query["url"]) as response:
        return web.json_response({"downstream": response.status})


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Readiness probe, logs nothing."""
    return web.json_response({"status": "ok"})


def make_app(argv: list[str] | None = None) -> web.Application:
    """The application, as ``python -m aiohttp.web`` asks for it (created after instrumentation)."""
    app = web.Application()
    app.add_routes(routes)
    return app
