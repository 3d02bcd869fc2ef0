"""otel-openreplay: a Python service's backend errors on OpenReplay's session replay.

The public API is these names; see the README for the settings. This module imports only
``opentelemetry-api`` eagerly (the propagator's entry point loads it while ``opentelemetry.propagate``
is importing); the SDK-side names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import Session, current_session, session
from otel_openreplay.settings import Settings, SettingsError
from otel_openreplay.version import __version__

if TYPE_CHECKING:
    from otel_openreplay.exporter import ElasticsearchLogExporter
    from otel_openreplay.instrumentor import OpenReplayInstrumentor
    from otel_openreplay.processor import OpenReplayLogProcessor
    from otel_openreplay.span_processor import OpenReplaySpanProcessor
    from otel_openreplay.wiring import Wiring, configure

__all__ = [
    "ElasticsearchLogExporter",
    "OpenReplayInstrumentor",
    "OpenReplayLogProcessor",
    "OpenReplayPropagator",
    "OpenReplaySpanProcessor",
    "Session",
    "Settings",
    "SettingsError",
    "Wiring",
    "__version__",
    "configure",
    "current_session",
    "session",
]

_LAZY = {
    "configure": "otel_openreplay.wiring",
    "Wiring": "otel_openreplay.wiring",
    "ElasticsearchLogExporter": "otel_openreplay.exporter",
    "OpenReplayInstrumentor": "otel_openreplay.instrumentor",
    "OpenReplayLogProcessor": "otel_openreplay.processor",
    "OpenReplaySpanProcessor": "otel_openreplay.span_processor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_openreplay' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
