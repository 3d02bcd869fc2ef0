"""The FastAPI app that ``benchmarks/apps.py`` serves: one route that logs one ERROR, as a failing request does.

It knows nothing about OpenReplay (``opentelemetry-instrument`` loads otel-openreplay, or not: that is
what the benchmark compares). It must stay this small: the benchmark measures what the package adds to
a request, and every line here dilutes it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
log = logging.getLogger("shop.checkout")


@app.get("/error", response_class=PlainTextResponse)
async def error() -> str:
    """Logs one ERROR record and answers 200."""
    log.error("payment declined: card %s expired", "4242")
    return "declined"


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    """Readiness probe, logs nothing."""
    return "ok"
