"""Exception capture: errors logged after their session's context is gone keep the session."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_openreplay import configure, session
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.span_processor import OpenReplaySpanProcessor
from tests.conftest import TOKEN, TOKEN_SESSION_ID, LogPipeline, otel_logging_handler

FULL = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_SESSION_ID}] "


@pytest.fixture
def wired(pipeline: LogPipeline):
    tracer_provider = TracerProvider()
    wiring = configure(logger_provider=pipeline.provider, tracer_provider=tracer_provider)
    handler = otel_logging_handler(pipeline.provider)
    root = logging.getLogger()
    root.addHandler(handler)
    yield pipeline, tracer_provider
    root.removeHandler(handler)
    wiring.undo()


class TestCapture:
    def test_error_logged_after_the_request_context_keeps_its_session(self, wired) -> None:
        """What uvicorn does: the server span records the exception, the log comes after detach."""
        pipeline, tracer_provider = wired
        ctx = OpenReplayPropagator().extract({"X-OpenReplay-SessionToken": TOKEN})
        tracer = tracer_provider.get_tracer("server")
        try:
            with tracer.start_as_current_span("GET /crash", context=ctx):
                raise RuntimeError("inventory service timed out")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application\n")
        (record,) = pipeline.records()
        assert record.body.startswith(FULL + "Exception in ASGI application")
        assert record.attributes["exception.type"] == "RuntimeError"

    def test_unlogged_exception_escaping_a_server_span_is_logged_in_its_context(self, wired) -> None:
        """uvicorn logs to a non-propagating logger after detach: we log it while the session is current."""
        pipeline, tracer_provider = wired
        ctx = OpenReplayPropagator().extract({"openReplaySession.id": "12"})
        token = context.attach(ctx)
        try:
            with tracer_provider.get_tracer("asgi").start_as_current_span("GET /crash", kind=SpanKind.SERVER):
                raise RuntimeError("inventory service timed out")
        except RuntimeError:
            pass
        finally:
            context.detach(token)
        (record,) = pipeline.records()
        assert record.body == "[openReplaySession.id=12] Unhandled exception in GET /crash"
        assert "RuntimeError: inventory service timed out" in record.attributes["exception.stacktrace"]

    def test_exception_logged_by_the_framework_is_not_logged_again(self, wired) -> None:
        """Flask and Django log the error themselves inside the request: one record, not two."""
        pipeline, tracer_provider = wired
        try:
            with tracer_provider.get_tracer("wsgi").start_as_current_span("GET /crash", kind=SpanKind.SERVER):
                try:
                    raise RuntimeError("boom")
                except RuntimeError:
                    logging.getLogger("flask.app").exception("Exception on /crash [GET]")
                    raise
        except RuntimeError:
            pass
        assert [r.body for r in pipeline.records()] == ["Exception on /crash [GET]"]

    def test_exception_leaving_a_session_block_and_logged_by_the_caller(self, wired) -> None:
        """A job's error logged by the caller's `except` carries the job's session."""
        pipeline, _ = wired
        try:
            with session(session_id="8"):
                raise KeyError("sku")
        except KeyError:
            logging.getLogger("worker").exception("job failed")
        (record,) = pipeline.records()
        assert record.body == "[openReplaySession.id=8] job failed"

    @pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
    def test_uncaught_exception_in_a_thread_is_logged_at_error(self, wired) -> None:
        """threading.excepthook logs with exc_info and the thread's current session."""
        pipeline, _ = wired

        def work() -> None:
            with session(token=TOKEN):
                raise ValueError("bad receipt")

        thread = threading.Thread(target=work, name="receipts")
        thread.start()
        thread.join()
        (record,) = pipeline.records()
        assert record.body == FULL + "Uncaught exception in thread receipts"
        assert record.severity_text == "ERROR"
        assert record.attributes["exception.type"] == "ValueError"

    def test_uncaught_exception_in_main_thread(self, wired, capsys: pytest.CaptureFixture[str]) -> None:
        """sys.excepthook logs at ERROR, then the previous hook still prints the traceback."""
        pipeline, _ = wired
        try:
            with session(session_id="5"):
                raise OSError("disk full")
        except OSError:
            sys.excepthook(*sys.exc_info())
        (record,) = pipeline.records()
        assert record.body == "[openReplaySession.id=5] Uncaught exception"
        assert "OSError: disk full" in capsys.readouterr().err

    def test_keyboard_interrupt_is_not_an_error(self, wired) -> None:
        """Ctrl-C is not reported as an application error."""
        pipeline, _ = wired
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())
        assert pipeline.records() == []

    def test_undo_restores_every_hook(self, pipeline: LogPipeline) -> None:
        """After undo, the hooks are those that were there before."""
        from opentelemetry.sdk.trace import Span

        before = (logging.getLogRecordFactory(), sys.excepthook, threading.excepthook, Span.record_exception)
        wiring = configure(logger_provider=pipeline.provider, tracer_provider=TracerProvider())
        assert sys.excepthook is not before[1]
        wiring.undo()
        after = (logging.getLogRecordFactory(), sys.excepthook, threading.excepthook, Span.record_exception)
        assert after == before

    def test_capture_can_be_turned_off(self, pipeline: LogPipeline) -> None:
        """capture_exceptions=False installs no hook."""
        before = sys.excepthook
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        try:
            assert sys.excepthook is before
        finally:
            wiring.undo()

    def test_span_processor_is_added_and_removed(self) -> None:
        """configure() adds the span processor to the tracer provider; undo() removes it."""
        tracer_provider = TracerProvider()
        wiring = configure(tracer_provider=tracer_provider, capture_exceptions=False)
        members = tracer_provider._active_span_processor._span_processors
        assert any(isinstance(p, OpenReplaySpanProcessor) for p in members)
        wiring.undo()
        assert tracer_provider._active_span_processor._span_processors == ()
