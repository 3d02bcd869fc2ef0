"""OpenReplayLogProcessor on the real SDK, with the BATCH processor that production uses."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)

from otel_openreplay import configure, session
from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.settings import Settings
from otel_openreplay.wiring import Wiring
from tests.conftest import TOKEN, TOKEN_SESSION_ID, LogPipeline, batch_processor_copies_records, otel_logging_handler

FULL = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_SESSION_ID}] "


@pytest.fixture
def wired(pipeline: LogPipeline) -> LogPipeline:
    wiring: Wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
    yield pipeline
    wiring.undo()


def emit(pipeline: LogPipeline, body: object, **attributes: object) -> None:
    pipeline.provider.get_logger("app").emit(body=body, severity_text="ERROR", attributes=attributes or None)


class TestOpenReplayLogProcessor:
    def test_prefix_and_attributes_survive_the_batch_processor(self, wired: LogPipeline) -> None:
        """configure() puts the processor ahead of the batch processor, so the exported body is prefixed."""
        with session(token=TOKEN):
            emit(wired, "payment declined")
        (record,) = wired.records()
        assert record.body == FULL + "payment declined"
        assert record.attributes["openReplaySessionToken"] == TOKEN
        assert record.attributes["openReplaySession.id"] == TOKEN_SESSION_ID

    @pytest.mark.skipif(not batch_processor_copies_records(), reason="older SDKs export the record itself")
    def test_a_processor_added_after_the_batch_one_loses_the_body(self) -> None:
        """Why ordering matters: appended after the batch processor, the body change never reaches export."""
        pipeline = LogPipeline()
        pipeline.provider.add_log_record_processor(OpenReplayLogProcessor(Settings.from_env({})))
        with session(token=TOKEN):
            emit(pipeline, "late")
        (record,) = pipeline.records()
        assert not record.body.startswith("[openReplaySessionToken=")

    def test_no_session_no_change(self, wired: LogPipeline) -> None:
        """A record outside any session is exported untouched."""
        emit(wired, "plain")
        (record,) = wired.records()
        assert record.body == "plain"
        assert "openReplaySessionToken" not in record.attributes

    def test_never_prefixed_twice(self, wired: LogPipeline) -> None:
        """A body that already has the prefix (a re-logged message) keeps a single prefix."""
        with session(token=TOKEN):
            emit(wired, FULL + "again")
        (record,) = wired.records()
        assert record.body == FULL + "again"

    @pytest.mark.parametrize("body", [{"event": "declined", "amount": 3}, 42, ["a", "b"], None, b"raw"])
    def test_non_string_bodies_keep_their_value(self, wired: LogPipeline, body: object) -> None:
        """Structured bodies are not turned into strings; they get the attributes only."""
        with session(token=TOKEN):
            emit(wired, body)
        (record,) = wired.records()
        assert record.body == body
        assert record.attributes["openReplaySessionToken"] == TOKEN

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("token", f"[openReplaySessionToken={TOKEN}] m"),
            ("id", f"[openReplaySession.id={TOKEN_SESSION_ID}] m"),
            ("none", "m"),
        ],
    )
    def test_prefix_parts_setting(self, pipeline: LogPipeline, prefix: str, expected: str) -> None:
        """OTEL_OPENREPLAY_PREFIX picks the parts; attributes are always set."""
        wiring = configure(logger_provider=pipeline.provider, prefix=prefix, capture_exceptions=False)
        try:
            with session(token=TOKEN):
                emit(pipeline, "m")
        finally:
            wiring.undo()
        (record,) = pipeline.records()
        assert record.body == expected
        assert record.attributes["openReplaySession.id"] == TOKEN_SESSION_ID

    def test_processors_with_other_settings_share_a_session(self) -> None:
        """What a session's records get is kept per session AND per settings: two providers, two prefixes."""
        providers, exporters = [], []
        for prefix in ("token,id", "token"):
            provider = LoggerProvider(shutdown_on_exit=False)
            provider.add_log_record_processor(OpenReplayLogProcessor(Settings.from_env({}, prefix=prefix)))
            exporters.append(InMemoryLogRecordExporter())
            provider.add_log_record_processor(SimpleLogRecordProcessor(exporters[-1]))
            providers.append(provider)
        with session(token=TOKEN):
            for _ in range(2):  # the second record of each reads what the first one stored on the session
                for provider in providers:
                    provider.get_logger("app").emit(body="m", severity_text="ERROR")
        full, token_only = ([data.log_record.body for data in e.get_finished_logs()] for e in exporters)
        assert full == [FULL + "m"] * 2
        assert token_only == [f"[openReplaySessionToken={TOKEN}] m"] * 2
        for provider in providers:
            provider.shutdown()

    def test_a_session_only_in_baggage_is_read_per_context(self, wired: LogPipeline) -> None:
        """A session that came in W3C baggage tags its context's records, and only those."""
        in_baggage = baggage.set_baggage("openReplaySessionToken", TOKEN, Context())
        forged = baggage.set_baggage("openReplaySessionToken", "x] [forged", Context())
        for ctx, body in ((in_baggage, "a"), (Context(), "b"), (forged, "c"), (in_baggage, "d")):
            token = context.attach(ctx)
            try:
                emit(wired, body)
            finally:
                context.detach(token)
        assert [record.body for record in wired.records()] == [FULL + "a", "b", "c", FULL + "d"]

    def test_attributes_from_extra_are_validated(self, wired: LogPipeline) -> None:
        """A session passed as record attributes is used only when valid, and a forged one is removed."""
        emit(wired, "job failed", **{"openReplaySession.id": "123"})
        emit(wired, "forged", **{"openReplaySessionToken": "x] [y", "openReplaySession.id": "9"})
        first, second = wired.records()
        assert first.body == "[openReplaySession.id=123] job failed"
        assert second.body == "[openReplaySession.id=9] forged"
        assert "openReplaySessionToken" not in second.attributes

    def test_python_logging_records_through_the_handler(self, wired: LogPipeline) -> None:
        """A stdlib logging call through OTel's handler is tagged like any record."""

        handler = otel_logging_handler(wired.provider)
        logger = logging.getLogger("test.processor.handler")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            with session(session_id="31"):
                logger.error("card %s expired", "4242")
        finally:
            logger.removeHandler(handler)
        (record,) = wired.records()
        assert record.body == "[openReplaySession.id=31] card 4242 expired"

    def test_never_raises_into_the_app(self, wired: LogPipeline) -> None:
        """A record the processor cannot handle is passed on unchanged, without an exception."""

        class Odd:
            log_record = None

        OpenReplayLogProcessor(Settings.from_env({})).on_emit(Odd())


class TestOrdering:
    def test_put_first_even_when_batch_processors_exist(self, pipeline: LogPipeline) -> None:
        """Our processor is first of the provider's processors, before every exporter's."""
        extra = BatchLogRecordProcessor(InMemoryLogRecordExporter())
        pipeline.provider.add_log_record_processor(extra)
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        try:
            processors = pipeline.provider._multi_log_record_processor._log_record_processors
            assert isinstance(processors[0], OpenReplayLogProcessor)
            assert len(processors) == 3
        finally:
            wiring.undo()
        processors = pipeline.provider._multi_log_record_processor._log_record_processors
        assert not any(isinstance(p, OpenReplayLogProcessor) for p in processors)


class TestConfigureWithExporter:
    def test_exporter_goes_behind_our_processor_and_leaves_on_undo(self) -> None:
        """configure(exporter=...) adds a batch processor for it after ours; undo removes and flushes it."""
        from opentelemetry.sdk._logs import LoggerProvider

        provider = LoggerProvider(shutdown_on_exit=False)
        exporter = InMemoryLogRecordExporter()
        wiring = configure(logger_provider=provider, exporter=exporter, capture_exceptions=False)
        with session(session_id="3"):
            provider.get_logger("job").emit(body="failed", severity_text="ERROR")
        wiring.undo()
        assert [data.log_record.body for data in exporter.get_finished_logs()] == ["[openReplaySession.id=3] failed"]
        assert provider._multi_log_record_processor._log_record_processors == ()
