"""Shared fixtures: real SDK providers for unit tests; the real Elasticsearch and collector plugins."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import propagate
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter

pytest_plugins = ["tests.stack.fixtures"]

TOKEN = "1bq7y3xsc6hdc.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
"""A token in OpenReplay's shape: base36(session id).base36(delay).base36(expiry).base58(HMAC)."""
TOKEN_SESSION_ID = str(int("1bq7y3xsc6hdc", 36))


def otel_logging_handler(provider: LoggerProvider, level: int = logging.NOTSET) -> logging.Handler:
    """OpenTelemetry's stdlib logging handler: instrumentation-logging's, or the SDK's on older releases."""
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:  # opentelemetry-instrumentation-logging < 0.61b0
        from opentelemetry.sdk._logs import LoggingHandler  # type: ignore[attr-defined,no-redef]
    return LoggingHandler(level=level, logger_provider=provider)


def batch_processor_copies_records() -> bool:
    """Whether BatchLogRecordProcessor exports a copy of the record (SDK ≥ 1.44) rather than the record."""
    from opentelemetry.sdk import version

    major, minor = (int(part) for part in version.__version__.split(".")[:2])
    return (major, minor) >= (1, 44)


class LogPipeline:
    """A LoggerProvider whose export path is the BATCH processor, as in production."""

    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider(shutdown_on_exit=False)
        self.provider.add_log_record_processor(BatchLogRecordProcessor(self.exporter, schedule_delay_millis=50))

    def records(self) -> list:
        self.provider.force_flush()
        return [data.log_record for data in self.exporter.get_finished_logs()]


@pytest.fixture
def pipeline() -> Iterator[LogPipeline]:
    made = LogPipeline()
    yield made
    made.provider.shutdown()


@pytest.fixture(autouse=True)
def _restore_global_propagator() -> Iterator[None]:
    before = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(before)
