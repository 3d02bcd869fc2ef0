"""OpenReplaySpanProcessor: spans started under a session carry its attributes."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import session
from otel_openreplay.span_processor import OpenReplaySpanProcessor
from tests.conftest import TOKEN, TOKEN_SESSION_ID


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(OpenReplaySpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter


class TestOpenReplaySpanProcessor:
    def test_spans_under_a_session_get_the_attributes(self) -> None:
        """Child spans inside a session block carry token and id."""
        tracer_provider, exporter = provider()
        with session(token=TOKEN), tracer_provider.get_tracer("t").start_as_current_span("work"):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.attributes["openReplaySessionToken"] == TOKEN
        assert span.attributes["openReplaySession.id"] == TOKEN_SESSION_ID

    def test_server_span_started_in_the_extracted_context(self) -> None:
        """A server span started with the context the propagator extracted is tagged."""
        tracer_provider, exporter = provider()
        ctx = OpenReplayPropagator().extract({"openReplaySession.id": "99"})
        tracer_provider.get_tracer("t").start_span("GET /", context=ctx).end()
        (span,) = exporter.get_finished_spans()
        assert span.attributes["openReplaySession.id"] == "99"
        assert "openReplaySessionToken" not in span.attributes

    def test_spans_without_session_are_untouched(self) -> None:
        """No session, no attributes."""
        tracer_provider, exporter = provider()
        tracer_provider.get_tracer("t").start_span("idle").end()
        (span,) = exporter.get_finished_spans()
        assert "openReplaySession.id" not in span.attributes
