"""The session kept by spans: found where the extracted context is not current (aiohttp's way), never leaked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_openreplay import configure
from otel_openreplay.session import Session, current_session, session_of_span
from tests.conftest import TOKEN, TOKEN_SESSION_ID, LogPipeline, otel_logging_handler

FULL = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_SESSION_ID}] "


class Wired:
    """A log pipeline and a tracer provider wired by configure(), with OTel's logging handler on a logger."""

    def __init__(self, pipeline: LogPipeline, **settings: object) -> None:
        self.pipeline = pipeline
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.wiring = configure(
            logger_provider=pipeline.provider,
            tracer_provider=self.tracer_provider,
            capture_exceptions=False,
            **settings,
        )
        self.propagator = self.wiring.propagator
        self.tracer = self.tracer_provider.get_tracer("aiohttp-like")
        self.log = logging.getLogger("shop.span_session")
        self.handler = otel_logging_handler(pipeline.provider)
        self.log.addHandler(self.handler)
        self.log.propagate = False

    def server_span(self, headers: dict[str, str]) -> object:
        """What aiohttp's middleware does: the span current, the extracted context not."""
        return self.tracer.start_as_current_span("GET /checkout", context=self.propagator.extract(headers))

    def bodies(self) -> list[str]:
        return [record.body for record in self.pipeline.records()]

    def close(self) -> None:
        self.log.removeHandler(self.handler)
        self.log.propagate = True
        self.wiring.undo()


@pytest.fixture
def wired(pipeline: LogPipeline) -> Iterator[Wired]:
    made = Wired(pipeline)
    yield made
    made.close()


class TestSpanKeepsItsSession:
    def test_a_handler_under_the_span_logs_with_the_session(self, wired: Wired) -> None:
        """Neither our context key nor baggage is current, only the span: the record is tagged all the same."""
        with wired.server_span({"X-OpenReplay-SessionToken": TOKEN}):
            assert baggage.get_all() == {}  # what aiohttp leaves current: no extracted baggage
            assert current_session() == Session(TOKEN, TOKEN_SESSION_ID)
            wired.log.error("payment declined")
        assert wired.bodies() == [FULL + "payment declined"]

    def test_child_spans_threads_and_outgoing_headers_inherit_it(self, wired: Wired) -> None:
        """A child span keeps it and is tagged; a thread given the context logs with it; inject writes our headers."""
        headers: dict[str, str] = {}
        with wired.server_span({"openReplaySession.id": "4242"}):
            with wired.tracer.start_as_current_span("SELECT orders"):
                wired.propagator.inject(headers)
            worker = threading.Thread(target=_log_in, args=(context.get_current(), wired))
            worker.start()
            worker.join()
        assert headers == {"openReplaySession.id": "4242"}
        child = next(span for span in wired.spans.get_finished_spans() if span.name == "SELECT orders")
        assert child.attributes["openReplaySession.id"] == "4242"
        assert wired.bodies() == ["[openReplaySession.id=4242] in a thread"]

    def test_no_header_no_session(self, wired: Wired) -> None:
        """A span started without a session keeps none: records untagged, no header injected."""
        headers: dict[str, str] = {}
        with wired.server_span({}):
            assert session_of_span() is None
            wired.log.error("plain")
            wired.propagator.inject(headers)
        assert wired.bodies() == ["plain"]
        assert headers == {}

    def test_the_session_ends_with_its_span(self, wired: Wired) -> None:
        """After the request's span, the next request on the same thread has no session of it."""
        with wired.server_span({"openReplaySession.id": "1"}):
            wired.log.error("first")
        with wired.server_span({}):
            wired.log.error("second")
        wired.log.error("between requests")
        assert wired.bodies() == ["[openReplaySession.id=1] first", "second", "between requests"]

    def test_interleaved_spans_keep_their_own(self, wired: Wired) -> None:
        """Two requests' spans current in turn: each record carries its own span's session."""
        spans = {}
        for session_id in ("7", "8"):
            ctx = wired.propagator.extract({"openReplaySession.id": session_id})
            spans[session_id] = trace.set_span_in_context(wired.tracer.start_span("GET /", context=ctx))
        for session_id in ("7", "8", "7", "8"):
            token = context.attach(spans[session_id])
            try:
                wired.log.error("for %s", session_id)
            finally:
                context.detach(token)
        assert wired.bodies() == [f"[openReplaySession.id={n}] for {n}" for n in ("7", "8", "7", "8")]

    def test_span_attributes_off_still_keeps_the_session(self, pipeline: LogPipeline) -> None:
        """OTEL_OPENREPLAY_SPAN_ATTRIBUTES=false: no attributes on spans, the records are still tagged."""
        wired = Wired(pipeline, span_attributes=False)
        try:
            with wired.server_span({"openReplaySession.id": "5"}):
                wired.log.error("tagged")
            (span,) = wired.spans.get_finished_spans()
            assert "openReplaySession.id" not in span.attributes
            assert wired.bodies() == ["[openReplaySession.id=5] tagged"]
        finally:
            wired.close()

    def test_propagate_false_injects_nothing(self, pipeline: LogPipeline) -> None:
        """propagate=False: the span's session tags records but never leaves in headers."""
        wired = Wired(pipeline, propagate=False)
        try:
            headers: dict[str, str] = {}
            with wired.server_span({"openReplaySession.id": "6"}):
                wired.propagator.inject(headers)
                wired.log.error("kept here")
            assert headers == {}
            assert wired.bodies() == ["[openReplaySession.id=6] kept here"]
        finally:
            wired.close()

    def test_our_key_wins_over_the_span(self, wired: Wired) -> None:
        """A session made current inside the span (a job's own) is the one records carry."""
        from otel_openreplay import session

        with wired.server_span({"openReplaySession.id": "1"}), session(session_id="2"):
            wired.log.error("job")
        assert wired.bodies() == ["[openReplaySession.id=2] job"]


def _log_in(ctx: context.Context, wired: Wired) -> None:
    token = context.attach(ctx)  # what opentelemetry-instrumentation-threading does for a thread
    try:
        wired.log.error("in a thread")
    finally:
        context.detach(token)
