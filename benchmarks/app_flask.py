"""The Flask app that ``benchmarks/apps.py`` serves: one route that logs one ERROR, as a failing request does.

It knows nothing about OpenReplay (``opentelemetry-instrument`` loads otel-openreplay, or not: that is
what the benchmark compares). It must stay this small: the benchmark measures what the package adds to
a request, and every line here dilutes it.
"""

from __future__ import annotations

import logging

from flask import Flask

app = Flask(__name__)
log = logging.getLogger("shop.checkout")


@app.get("/error")
def error() -> str:
    """Logs one ERROR record and answers 200."""
    log.error("payment declined: card %s expired", "4242")
    return "declined"


@app.get("/health")
def health() -> str:
    """Readiness probe, logs nothing."""
    return "ok"
