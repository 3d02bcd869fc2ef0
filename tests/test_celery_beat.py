"""celery_beat: the beat process of ``celery worker -B`` says when it cannot export over OTLP/gRPC.

Exporters are found behind the real SDK's providers and processors; the exporters themselves are stand-ins
named as the OTLP packages name theirs (no gRPC channel is made here). The real ``worker -B`` over gRPC,
and over OTLP/HTTP, is in tests/test_celery_e2e.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from celery import signals
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_openreplay import celery_logging
from otel_openreplay.celery_beat import EMBEDDED_BEAT_MESSAGE, grpc_exporters, warn_if_beat_cannot_export
from tests.conftest import otel_logging_handler


class _Logs(LogRecordExporter):
    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class _Spans(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def exporter(base: type, name: str, module: str) -> Any:
    """An exporter whose class is named and placed as an OTLP package's (``OTLPLogExporter`` in ``module``)."""
    return type(name, (base,), {"__module__": module})()


GRPC_LOGS = "opentelemetry.exporter.otlp.proto.grpc._log_exporter"
HTTP_LOGS = "opentelemetry.exporter.otlp.proto.http._log_exporter"
GRPC_SPANS = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


@pytest.fixture
def providers() -> Iterator[tuple[LoggerProvider, TracerProvider]]:
    logs, spans = LoggerProvider(shutdown_on_exit=False), TracerProvider(shutdown_on_exit=False)
    yield logs, spans
    logs.shutdown()
    spans.shutdown()


class TestGrpcExporters:
    @pytest.mark.parametrize("processor", [BatchLogRecordProcessor, SimpleLogRecordProcessor])
    def test_log_exporter_behind_a_provider(
        self, providers: tuple[LoggerProvider, TracerProvider], processor: type
    ) -> None:
        """An OTLP/gRPC log exporter behind the SDK's batch or simple processor is found."""
        logs, _ = providers
        logs.add_log_record_processor(processor(exporter(_Logs, "OTLPLogExporter", GRPC_LOGS)))
        assert grpc_exporters([logs]) == ["OTLPLogExporter"]

    def test_span_exporter_behind_a_provider(self, providers: tuple[LoggerProvider, TracerProvider]) -> None:
        """An OTLP/gRPC span exporter behind the SDK's batch span processor is found too."""
        _, spans = providers
        spans.add_span_processor(BatchSpanProcessor(exporter(_Spans, "OTLPSpanExporter", GRPC_SPANS)))
        assert grpc_exporters([spans]) == ["OTLPSpanExporter"]

    def test_http_and_others_are_not_reported(self, providers: tuple[LoggerProvider, TracerProvider]) -> None:
        """OTLP/HTTP (which works in that process) and any other exporter: nothing to report."""
        logs, spans = providers
        logs.add_log_record_processor(BatchLogRecordProcessor(exporter(_Logs, "OTLPLogExporter", HTTP_LOGS)))
        logs.add_log_record_processor(SimpleLogRecordProcessor(_Logs()))
        assert grpc_exporters([logs, spans, None]) == []

    def test_a_cycle_ends(self) -> None:
        """An object reachable from itself is visited once."""

        class Loop:
            def __init__(self) -> None:
                self._exporter = self

        assert grpc_exporters([Loop()]) == []


@pytest.fixture
def grpc_handler(providers: tuple[LoggerProvider, TracerProvider]) -> Iterator[logging.Handler]:
    """OpenTelemetry's handler on the root logger, its provider exporting over OTLP/gRPC."""
    logs, _ = providers
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter(_Logs, "OTLPLogExporter", GRPC_LOGS)))
    handler = otel_logging_handler(logs)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


class TestWarning:
    def test_names_both_ways_out(self, grpc_handler: logging.Handler, caplog: pytest.LogCaptureFixture) -> None:
        """One ERROR: what is lost, why, and the two ways out, with the exporter found."""
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_beat"):
            warn_if_beat_cannot_export(sender=object())
        (report,) = [r for r in caplog.records if r.name == "otel_openreplay.celery_beat"]
        assert report.levelno == logging.ERROR
        assert report.getMessage() == f"{EMBEDDED_BEAT_MESSAGE} (found: OTLPLogExporter)"
        assert "Run `celery beat` as a process of its own" in EMBEDDED_BEAT_MESSAGE
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in EMBEDDED_BEAT_MESSAGE

    def test_sent_in_the_embedded_beat_process(
        self, grpc_handler: logging.Handler, caplog: pytest.LogCaptureFixture
    ) -> None:
        """install() connects the check to ``beat_embedded_init`` (sent in the beat process ``-B`` forks only)."""
        unhook = celery_logging.install()
        assert unhook is not None
        try:
            with caplog.at_level(logging.ERROR, logger="otel_openreplay.celery_beat"):
                signals.beat_embedded_init.send(sender=object())
        finally:
            unhook()
        assert [r.getMessage() for r in caplog.records if r.name == "otel_openreplay.celery_beat"] == [
            f"{EMBEDDED_BEAT_MESSAGE} (found: OTLPLogExporter)"
        ]

    def test_nothing_to_say_without_grpc(self, caplog: pytest.LogCaptureFixture) -> None:
        """No OTLP/gRPC exporter in this process (the unit suite's own providers): nothing is logged."""
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_beat"):
            warn_if_beat_cannot_export()
        assert [r for r in caplog.records if r.name == "otel_openreplay.celery_beat"] == []

    def test_never_raises(self, caplog: pytest.LogCaptureFixture) -> None:
        """A provider that fails when looked at: logged at DEBUG with the cause, and beat goes on."""

        class Hostile(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                pass

            @property
            def _logger_provider(self) -> Any:
                raise RuntimeError("not today")

        hostile = Hostile()
        logging.getLogger().addHandler(hostile)
        try:
            with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_beat"):
                warn_if_beat_cannot_export()
        finally:
            logging.getLogger().removeHandler(hostile)
        (report,) = [r for r in caplog.records if r.name == "otel_openreplay.celery_beat"]
        assert report.levelno == logging.DEBUG
        assert report.exc_info is not None
        assert str(report.exc_info[1]) == "not today"
