"""The document contract: golden records → exact documents, and each rule of the layout on its own."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
from opentelemetry.sdk.resources import Resource

from otel_openreplay.generations import ui_level
from otel_openreplay.layout import (
    FIELDS,
    body_text,
    build_message,
    document_id,
    expand_dotted,
    format_time,
    level_for,
    to_document,
)
from tests.conftest import TOKEN, TOKEN_SESSION_ID, otel_logging_handler
from tests.fixtures.documents.golden import cases, sdk_record

TOKEN_PART = f"[openReplaySessionToken={TOKEN}] "
ID_PART = f"[openReplaySession.id={TOKEN_SESSION_ID}] "
CASES = cases()


class TestGoldenDocuments:
    """Every golden record becomes exactly its golden document."""

    @pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
    def test_readable_log_record(self, case):
        """The SDK's ReadableLogRecord of each case gives the golden document (or none)."""
        document = to_document(sdk_record(case.record), min_severity=case.min_severity, replay_url=case.replay_url)
        assert document == case.document

    @pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
    def test_old_logdata_shape(self, case):
        """The pre-1.39 LogData shape (resource on the inner record) gives the same document."""
        modern = sdk_record(case.record)
        inner = SimpleNamespace(**{k: getattr(modern.log_record, k) for k in _LOG_RECORD_FIELDS})
        inner.resource = modern.resource
        old = SimpleNamespace(log_record=inner, instrumentation_scope=modern.instrumentation_scope)
        assert to_document(old, min_severity=case.min_severity, replay_url=case.replay_url) == case.document

    def test_cases_cover_the_rules(self):
        """The golden set has a case for each rule the collector must also implement."""
        names = {case.name for case in CASES}
        assert {"exception_with_token", "session_id_only", "invalid_token", "warning_not_written"} <= names
        assert len(CASES) >= 15

    def test_cases_cover_the_severities(self):
        """Odd severities other senders set have golden cases: no text, text only, FATAL to FATAL4, case, threshold."""
        names = {case.name for case in CASES}
        assert {"minimal", "severity_number_only_fatal", "severity_text_only", "severity_text_lowercase"} <= names
        assert {"fatal", "fatal2", "fatal3", "fatal4", "severity_text_disagrees"} <= names
        assert {case.record["severity_number"] for case in CASES} >= set(range(21, 25))
        assert {case.document["level"] for case in CASES if case.min_severity < 17 and case.document} == {
            "warning",
            "info",
            "debug",
        }

    def test_every_document_has_a_level_the_panel_reads(self):
        """Each golden document has `level`, lowercase, shown by OpenReplay ≥ 1.21 as that very status."""
        for case in CASES:
            if case.document is not None:
                level = case.document["level"]
                assert level in ("error", "warning", "info", "debug"), case.name
                assert ui_level(level) == level, case.name
                assert case.document["tags"] == [level], case.name

    def test_documents_have_no_empty_values(self):
        """No golden document holds an empty string, None, an empty list or an empty object."""
        for case in CASES:
            if case.document is None:
                continue
            for value in _leaves(case.document):
                assert value not in ("", None, [], {}), case.name


_LOG_RECORD_FIELDS = (
    "timestamp",
    "observed_timestamp",
    "trace_id",
    "span_id",
    "severity_text",
    "severity_number",
    "body",
    "attributes",
)


def _leaves(value):
    if isinstance(value, dict):
        if not value:
            yield value
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


class TestBuildMessage:
    """The message: body text, the exception, then the prefix, never doubled."""

    def test_token_gives_both_parts(self):
        """A valid token alone gives the token part and the id part derived from it."""
        assert build_message("boom", {"openReplaySessionToken": TOKEN}) == TOKEN_PART + ID_PART + "boom"

    def test_id_attribute_wins_over_derived(self):
        """An explicit valid session id is used as is, not the one derived from the token."""
        message = build_message("boom", {"openReplaySessionToken": TOKEN, "openReplaySession.id": "12"})
        assert message == TOKEN_PART + "[openReplaySession.id=12] boom"

    def test_full_prefix_left_alone(self):
        """A message that already starts with the full prefix is unchanged."""
        body = TOKEN_PART + ID_PART + "boom"
        assert build_message(body, {"openReplaySessionToken": TOKEN}) == body

    def test_partial_prefix_completed(self):
        """A message with only the id part gets the full prefix once."""
        body = ID_PART + "boom"
        assert build_message(body, {"openReplaySessionToken": TOKEN}) == TOKEN_PART + ID_PART + "boom"

    def test_invalid_values_ignored(self):
        """An invalid token and an invalid id add nothing."""
        attributes = {"openReplaySessionToken": "a b", "openReplaySession.id": "12x"}
        assert build_message("boom", attributes) == "boom"

    def test_id_too_long_ignored(self):
        """A session id of 21 digits is not a session id."""
        assert build_message("boom", {"openReplaySession.id": "1" * 21}) == "boom"

    def test_stacktrace_appended_without_trailing_newlines(self):
        """The stack trace goes on a new line, trailing newlines removed."""
        attributes = {"exception.stacktrace": "Traceback\nValueError: x\n\n", "exception.type": "ValueError"}
        assert build_message("boom", attributes) == "boom\nTraceback\nValueError: x"

    def test_stacktrace_not_repeated(self):
        """A message already containing the stack trace does not get it again."""
        attributes = {"exception.stacktrace": "Traceback\nValueError: x\n"}
        assert build_message("boom\nTraceback\nValueError: x", attributes) == "boom\nTraceback\nValueError: x"

    def test_type_and_message_without_stacktrace(self):
        """Without a stack trace, `Type: message` is appended."""
        attributes = {"exception.type": "KeyError", "exception.message": "'sku'"}
        assert build_message("boom", attributes) == "boom\nKeyError: 'sku'"

    def test_prefix_goes_before_the_exception(self):
        """The prefix is at the very start, the exception after the body."""
        attributes = {"openReplaySession.id": "5", "exception.type": "KeyError"}
        assert build_message("boom", attributes) == "[openReplaySession.id=5] boom\nKeyError"


class TestBodyText:
    """Bodies of any type become text."""

    @pytest.mark.parametrize(
        ("body", "text"),
        [
            ("plain", "plain"),
            (None, ""),
            ({"b": 1, "a": [1, "x"]}, '{"a":[1,"x"],"b":1}'),
            (["é", 2], '["é",2]'),
            (b"caf\xc3\xa9", "café"),
            (42, "42"),
            (True, "True"),
        ],
    )
    def test_body(self, body, text):
        """Strings as is, maps and lists as compact sorted JSON, bytes as UTF-8, others via str()."""
        assert body_text(body) == text


class TestFormatTime:
    """Times are UTC RFC 3339 with exactly three fraction digits."""

    def test_milliseconds_truncated(self):
        """Nanoseconds are truncated to milliseconds, not rounded."""
        assert format_time(1_795_702_054_999_999_999) == "2026-11-26T14:07:34.999Z"

    def test_whole_second(self):
        """A whole second keeps `.000`."""
        assert format_time(1_795_702_054_000_000_000) == "2026-11-26T14:07:34.000Z"

    @pytest.mark.parametrize("value", [None, 0, -5])
    def test_no_time(self, value):
        """No (or a nonsensical) time gives None."""
        assert format_time(value) is None


class TestLevelFor:
    """Severity numbers map to OpenReplay's lowercase levels."""

    @pytest.mark.parametrize(
        ("number", "level"),
        [
            (1, "debug"),
            (8, "debug"),
            (9, "info"),
            (12, "info"),
            (13, "warning"),
            (16, "warning"),
            (17, "error"),
            (24, "error"),
            (25, "error"),
            (255, "error"),
            (0, None),
            (-1, None),
        ],
    )
    def test_ranges(self, number, level):
        """Each range of four severities has its level; above 24 (outside OTel's range) is error; 0 has none."""
        assert level_for(number) == level


class TestExpandDotted:
    """Dotted keys become nested objects."""

    def test_nests_and_merges(self):
        """Dotted keys sharing a parent merge into one object; `@timestamp` stays flat."""
        flat = {"@timestamp": "t", "log.logger": "a", "log.level": "ERROR", "openReplaySession.id": "1"}
        assert expand_dotted(flat) == {
            "@timestamp": "t",
            "log": {"logger": "a", "level": "ERROR"},
            "openReplaySession": {"id": "1"},
        }

    def test_mixed_spellings_are_the_same_document(self):
        """A nested and a dotted spelling of the same field expand to the same document."""
        assert expand_dotted({"openReplaySession": {"id": "1"}}) == expand_dotted({"openReplaySession.id": "1"})

    def test_empty_objects_dropped(self):
        """An object left empty is dropped."""
        assert expand_dotted({"error": {}, "a": 1}) == {"a": 1}

    def test_conflict_raises(self):
        """A key that is both a value and an object is refused."""
        with pytest.raises(ValueError, match="log"):
            expand_dotted({"log": "x", "log.level": "y"})


class TestFields:
    """The field table is the contract's list of fields."""

    def test_field_names(self):
        """The table names exactly the contract's fields, in document order."""
        assert [name for name, _ in FIELDS] == [
            "@timestamp",
            "utc_time",
            "message",
            "tags",
            "level",
            "openReplaySessionToken",
            "openReplaySession.id",
            "openReplaySession.url",
            "service.name",
            "log.logger",
            "log.level",
            "error.type",
            "error.message",
            "error.stack_trace",
            "trace.id",
            "span.id",
        ]


class TestToDocument:
    """Records are filtered by severity and read through the real SDK."""

    def test_threshold_is_a_parameter(self):
        """A warning is written when the threshold is lowered, with level `warning`."""
        case = next(c for c in CASES if c.name == "warning_not_written")
        document = to_document(sdk_record(case.record), min_severity=13)
        assert document is not None
        assert document["level"] == "warning"
        assert document["tags"] == ["warning"]

    @pytest.mark.parametrize(("number", "level"), [(25, "error"), (255, "error"), (5, "debug")])
    def test_any_written_number_has_a_level(self, number, level):
        """A plain-int severity (a bare API record), even beyond OTel's 24, gets its level and tag when written."""
        record = SimpleNamespace(
            log_record=SimpleNamespace(severity_number=number, body="odd", timestamp=1_795_702_054_120_000_000),
            resource=None,
            instrumentation_scope=None,
        )
        document = to_document(record, min_severity=1)
        assert document is not None
        assert (document["level"], document["tags"]) == (level, [level])

    @given(
        number=st.integers(min_value=-(2**31), max_value=2**31 - 1),
        text=st.one_of(st.none(), st.text(max_size=12)),
        threshold=st.integers(min_value=-5, max_value=30),
    )
    def test_every_written_document_has_a_level_the_panel_reads(self, number, text, threshold):
        """Whatever number and text a sender set and whatever the threshold, a document has a `level` that
        OpenReplay ≥ 1.21's panel shows as that very status, and `tags` with it; no number (< 1) is no document."""
        record = SimpleNamespace(
            log_record=SimpleNamespace(severity_number=number, severity_text=text, body="x", timestamp=1),
            resource=None,
            instrumentation_scope=None,
        )
        document = to_document(record, min_severity=threshold)
        if number < 1 or number < threshold:
            assert document is None
            return
        assert document is not None
        assert ui_level(document["level"]) == document["level"] == level_for(number)
        assert document["tags"] == [document["level"]]

    def test_no_severity_never_written(self):
        """A record without a severity number is not written, whatever the threshold."""
        record = sdk_record({"time_unix_nano": 1, "body": "x"})
        assert to_document(record, min_severity=1) is None

    def test_python_logging_through_the_sdk(self):
        """logger.exception through the SDK handler and batch processor gives the traceback in message."""
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        logger = logging.getLogger("tests.layout.sdk")
        logger.propagate = False
        handler = otel_logging_handler(provider)
        logger.addHandler(handler)
        try:
            try:
                raise KeyError("sku")
            except KeyError:
                logger.exception("lookup failed", extra={"openReplaySessionToken": TOKEN})
            provider.force_flush()
        finally:
            logger.removeHandler(handler)
            provider.shutdown()
        (record,) = exporter.get_finished_logs()
        document = to_document(record)
        assert document is not None
        assert document["message"].startswith(TOKEN_PART + ID_PART + "lookup failed\nTraceback")
        assert document["message"].endswith("KeyError: 'sku'")
        assert document["error"]["type"] == "KeyError"
        assert document["log"] == {"logger": "tests.layout.sdk", "level": "ERROR"}
        assert document["service"] == {"name": "shop"}


class TestDocumentId:
    """Document ids are deterministic and distinguish records."""

    def test_same_record_same_id(self):
        """Two builds of the same record have the same id, a 64-hex sha256."""
        case = CASES[0]
        first, second = document_id(sdk_record(case.record)), document_id(sdk_record(case.record))
        assert first == second
        assert len(first) == 64
        int(first, 16)

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("time_unix_nano", 1_795_702_054_120_000_001),
            ("observed_time_unix_nano", 1),
            ("trace_id", "5b8efff798038103d269b633813fc60d"),
            ("span_id", "eee19b7ec3c1b175"),
            ("severity_number", 18),
            ("body", "something else"),
            ("resource", {"service.name": "other"}),
            ("scope", "other.logger"),
            ("attributes", {"exception.type": "KeyError"}),
        ],
    )
    def test_each_key_field_changes_id(self, key, value):
        """Changing time, observed time, ids, severity, body, service, logger or attributes changes the id."""
        record = next(c for c in CASES if c.name == "exception_with_token").record
        assert document_id(sdk_record(record)) != document_id(sdk_record({**record, key: value}))

    def test_distinct_records_distinct_ids(self):
        """Every golden record has its own id, even those differing only in attributes."""
        ids = {document_id(sdk_record(case.record)) for case in CASES}
        assert len(ids) == len(CASES)

    def test_severity_enum_and_int_agree(self):
        """The id does not depend on whether the severity is an enum or a plain int."""
        record = sdk_record(CASES[0].record)
        plain = SimpleNamespace(
            log_record=SimpleNamespace(
                **{k: getattr(record.log_record, k) for k in _LOG_RECORD_FIELDS if k != "severity_number"},
                severity_number=int(SeverityNumber.ERROR.value),
            ),
            resource=record.resource,
            instrumentation_scope=record.instrumentation_scope,
        )
        assert document_id(plain) == document_id(record)
