"""Says, in its console, that the beat process of ``celery worker -B`` cannot export over OTLP/gRPC.

``celery worker -B`` forks its beat process and closes every file descriptor the child inherited but
the standard streams and the logging handlers' streams (``celery.beat._Process.run``), gRPC's own
included: from then on every OTLP/gRPC export of that process ends in ``DEADLINE_EXCEEDED`` and its
records (beat's "Message Error", "beat: Connection error") are lost. A new gRPC channel does not help
(gRPC's process-wide state is gone with the descriptors); OTLP/HTTP opens new connections and works,
and so does ``celery beat`` run as a process of its own. :func:`warn_if_beat_cannot_export` (a
``beat_embedded_init`` receiver, connected by :func:`otel_openreplay.celery_logging.install`, sent in
that child only) logs one ERROR naming both ways out when it finds an OTLP/gRPC exporter there.

What it must never do: import an exporter, gRPC or the SDK (it recognises exporters by their class's
module); change, replace or shut down an exporter; raise into Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider

_logger = logging.getLogger(__name__)

GRPC_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc"
"""The package of the OTLP/gRPC exporters (logs, spans, metrics)."""

EMBEDDED_BEAT_MESSAGE = (
    "otel-openreplay: the beat process of `celery worker -B` cannot export over OTLP/gRPC (Celery closes "
    "the file descriptors it inherited, gRPC's included): what it sends there is lost. Run `celery beat` "
    "as a process of its own, or export over OTLP/HTTP (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)."
)
"""Logged at ERROR with the names of the exporters found appended (``(found: OTLPLogExporter)``)."""

_PATH = (
    "_multi_log_record_processor",  # LoggerProvider
    "_log_record_processors",  # its multi-processor
    "_active_span_processor",  # TracerProvider
    "_span_processors",  # its multi-processor
    "_batch_processor",  # a batch processor's shared worker (SDK 1.3x+)
    "_exporter",  # a log processor's or the shared worker's exporter
    "span_exporter",  # a span processor's exporter
)
"""The SDK attributes followed from a provider to its exporters; a missing one is simply not followed."""


def _reachable(roots: Iterable[object]) -> Iterator[object]:
    """Every object reachable from ``roots`` along :data:`_PATH` (tuples and lists expanded), once each."""
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for name in _PATH:
            found = getattr(current, name, None)
            if isinstance(found, (tuple, list)):
                pending.extend(found)
            elif found is not None:
                pending.append(found)


def grpc_exporters(roots: Iterable[object]) -> list[str]:
    """The class names of the OTLP/gRPC exporters behind ``roots`` (providers, processors), in no set order."""
    return sorted(
        {type(found).__name__ for found in _reachable(roots) if type(found).__module__.startswith(GRPC_EXPORTER_MODULE)}
    )


def _providers() -> list[Any]:
    """The global providers and those of the handlers on the root logger (OpenTelemetry's keep theirs there)."""
    handlers = logging.getLogger().handlers
    return [
        get_logger_provider(),
        trace.get_tracer_provider(),
        *(getattr(handler, "_logger_provider", None) for handler in handlers),
    ]


def warn_if_beat_cannot_export(**_: Any) -> None:
    """Log :data:`EMBEDDED_BEAT_MESSAGE` at ERROR if an OTLP/gRPC exporter is set up; never raises."""
    try:
        found = grpc_exporters(_providers())
        if found:
            _logger.error("%s (found: %s)", EMBEDDED_BEAT_MESSAGE, ", ".join(found))
    except Exception:  # never into Celery
        _logger.debug("otel-openreplay: could not look for gRPC exporters", exc_info=True)
