"""The replay link: session start from a flake id, the jumpto offset, the URL, the setting's validation."""

from __future__ import annotations

import logging
import re
import time

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_openreplay import cli, configure, session
from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.replay import (
    FLAKE_EPOCH_MS,
    MAX_JUMPTO_MS,
    URL_KEY,
    ReplayLinks,
    jumpto_ms,
    kept_link,
    parse_moment,
    parse_replay_url,
    replay_link,
    session_start_ms,
)
from otel_openreplay.settings import Settings, SettingsError
from otel_openreplay.span_processor import OpenReplaySpanProcessor
from tests.conftest import TOKEN, TOKEN_SESSION_ID, otel_logging_handler
from tests.flakeid import flake_id

DASHBOARD = "https://openreplay.example.com/3"
START_MS = 1_795_702_000_000  # 2026-11-26T14:06:40Z


GOLDEN_FLAKE_IDS = [
    # (session id, start ms, shard, sequence): what OpenReplay's own Go code gives, not this package's
    # arithmetic. From backend/pkg/flakeid (openreplay/openreplay at dbb68105e865, Jul 2026), run as is:
    # NewFlaker(shard), Compose(start) called sequence + 1 times; ExtractTimestamp(id) == start for each.
    ("16777216", 1_550_000_000_001, 0, 0),  # 1 ms after the epoch
    ("838860800000000257", 1_600_000_000_000, 0x1, 1),
    ("3593110149839110403", 1_764_166_054_120, 0x2C1, 3),
    ("4122195525633714951", 1_795_702_000_000, 0x1A2B, 7),  # the README's example document
    ("4122195525648777215", 1_795_702_000_000, 0xFFFF, 255),  # shard and sequence at their maximum
    ("7549747200000010752", 2_000_000_000_000, 0x2A, 0),
    ("18446744073692774399", 2_649_511_627_774, 0xFFFF, 255),  # beyond int64: uint64 in Go
]

SESSION = flake_id(START_MS)


def ns(ms: int) -> int:
    return ms * 1_000_000


class TestSessionStart:
    """The start time is read from the id's top bits, as backend/pkg/flakeid writes it."""

    @pytest.mark.parametrize(("session_id", "start_ms", "shard", "seq"), GOLDEN_FLAKE_IDS)
    def test_start_of_ids_from_openreplays_go_code(self, session_id: str, start_ms: int, shard: int, seq: int):
        """The start read from ids OpenReplay's backend/pkg/flakeid composed, as a string and as an int."""
        assert session_start_ms(session_id) == start_ms
        assert session_start_ms(int(session_id)) == start_ms

    def test_flake_id_gives_its_start(self):
        """A flake id built from a start time gives that start back, whatever its shard and sequence."""
        assert session_start_ms(SESSION) == START_MS
        assert session_start_ms(flake_id(START_MS, shard=0xFFFF, seq=0xFF)) == START_MS
        assert session_start_ms(int(SESSION)) == START_MS

    def test_small_id_starts_at_the_epoch(self):
        """An id that is not a flake id (`42`) gives a start in 2019: the epoch itself."""
        assert session_start_ms("42") == FLAKE_EPOCH_MS

    def test_huge_id(self):
        """The largest 20-digit id gives a start far in the future (about 2207), not an error."""
        start = session_start_ms("9" * 20)
        assert start == ((10**20 - 1) >> 24) + FLAKE_EPOCH_MS
        assert start > START_MS + 100 * 365 * MAX_JUMPTO_MS

    @pytest.mark.parametrize("value", ["", "12x", "-5", "1" * 21, None, True, -1, 1.5])
    def test_not_an_id(self, value):
        """What is not a session id has no start."""
        assert session_start_ms(value) is None


class TestJumpto:
    """The offset is the record's time minus the start, only when 0 ≤ offset ≤ a day."""

    def test_offset_in_ms_truncated(self):
        """Nanoseconds are truncated to ms before subtracting."""
        assert jumpto_ms(START_MS, ns(START_MS + 12_345) + 999_999) == 12_345

    def test_at_the_start_and_a_day_later(self):
        """Both bounds are included."""
        assert jumpto_ms(START_MS, ns(START_MS)) == 0
        assert jumpto_ms(START_MS, ns(START_MS + MAX_JUMPTO_MS)) == MAX_JUMPTO_MS

    def test_before_the_start(self):
        """A record before the session started (a skewed clock) gets no offset."""
        assert jumpto_ms(START_MS, ns(START_MS - 1)) is None

    def test_far_future(self):
        """A record more than a day after the start gets no offset."""
        assert jumpto_ms(START_MS, ns(START_MS + MAX_JUMPTO_MS + 1)) is None

    @pytest.mark.parametrize("moment", [None, 0, -5])
    def test_no_time(self, moment):
        """A record without a time gets no offset."""
        assert jumpto_ms(START_MS, moment) is None

    def test_no_start(self):
        """No start (not an id), no offset."""
        assert jumpto_ms(None, ns(START_MS)) is None


class TestReplayLink:
    """The URL: dashboard, `/session/<id>`, and `?jumpto=` only for a sane offset."""

    def test_with_jumpto(self):
        assert replay_link(DASHBOARD, SESSION, ns(START_MS + 61_500)) == f"{DASHBOARD}/session/{SESSION}?jumpto=61500"

    def test_no_time_no_jumpto(self):
        assert replay_link(DASHBOARD, SESSION) == f"{DASHBOARD}/session/{SESSION}"

    def test_not_a_flake_id(self):
        """`42` starts in 2019: a 2026 record is years after it, so no jumpto."""
        assert replay_link(DASHBOARD, "42", ns(START_MS)) == f"{DASHBOARD}/session/42"

    def test_huge_id(self):
        """A huge id starts in the far future: the record is before it, so no jumpto."""
        assert replay_link(DASHBOARD, "9" * 20, ns(START_MS)) == f"{DASHBOARD}/session/{'9' * 20}"

    def test_record_before_start_and_far_future(self):
        assert "?" not in replay_link(DASHBOARD, SESSION, ns(START_MS - 1000))
        assert "?" not in replay_link(DASHBOARD, SESSION, ns(START_MS + 2 * MAX_JUMPTO_MS))

    def test_cached_links_equal_the_pure_function(self):
        """ReplayLinks gives the same links as replay_link, for every kind of id and time."""
        links = ReplayLinks(DASHBOARD)
        times = [None, 0, ns(START_MS - 1), ns(START_MS), ns(START_MS + 5), ns(START_MS + MAX_JUMPTO_MS + 1)]
        for session_id in (SESSION, "42", "9" * 20, "0"):
            for moment in times:
                for _ in range(2):  # the second call is served from the cache
                    assert links.link(session_id, moment) == replay_link(DASHBOARD, session_id, moment)

    def test_cache_is_bounded(self):
        """Many distinct sessions never grow the cache beyond its bound."""
        links = ReplayLinks(DASHBOARD)
        for number in range(10_000):
            links.link(str(number), None)
        assert len(links._cache) <= 4096


class TestParseMoment:
    """`--at`: RFC 3339 with a zone, or epoch ms."""

    @pytest.mark.parametrize(
        ("text", "nanos"),
        [
            ("1795702054120", 1_795_702_054_120_000_000),
            ("2026-11-26T14:07:34.120Z", 1_795_702_054_120_000_000),
            ("2026-11-26T14:07:34Z", 1_795_702_054_000_000_000),
            ("2026-11-26t14:07:34.123456789z", 1_795_702_054_123_456_789),
            ("2026-11-26T15:07:34.12+01:00", 1_795_702_054_120_000_000),
        ],
    )
    def test_valid(self, text, nanos):
        assert parse_moment(text) == nanos

    @pytest.mark.parametrize(
        "text", ["", "now", "2026-11-26T14:07:34", "2026-11-26", "-5", "1.5", "2026-02-30T00:00:00Z"]
    )
    def test_invalid(self, text):
        with pytest.raises(ValueError, match="time"):
            parse_moment(text)


class TestKeptLink:
    """Without its own setting, a writer keeps an incoming link only if it is this session's."""

    @pytest.mark.parametrize(
        "value",
        [
            f"{DASHBOARD}/session/{SESSION}",
            f"{DASHBOARD}/session/{SESSION}?jumpto=0",
            f"http://or.internal:8080/session/{SESSION}?jumpto=123456",
        ],
    )
    def test_kept(self, value):
        assert kept_link(value, SESSION) == value

    @pytest.mark.parametrize(
        "value",
        [
            f"{DASHBOARD}/session/123",  # another session
            f"{DASHBOARD}/session/{SESSION}0",  # a longer id
            f"{DASHBOARD}/session/{SESSION}?jumpto=-5",
            f"{DASHBOARD}/session/{SESSION}?jumpto=5&x=1",
            f"{DASHBOARD}/session/{SESSION}#x",
            f"javascript:alert(1)//session/{SESSION}",
            f'https://a" onmouseover="x/session/{SESSION}',
            f"https://a b/session/{SESSION}",
            f"{DASHBOARD}/session/{SESSION}\n",
            "",
            42,
            None,
        ],
    )
    def test_not_kept(self, value):
        assert kept_link(value, SESSION) is None

    def test_no_session_id(self):
        assert kept_link(f"{DASHBOARD}/session/1", None) is None


class TestSetting:
    """OTEL_OPENREPLAY_REPLAY_URL: unset is off; a bad value names the variable."""

    def test_unset_and_empty_are_off(self):
        assert Settings.from_env({}).replay_url is None
        assert Settings.from_env({"OTEL_OPENREPLAY_REPLAY_URL": ""}).replay_url is None
        assert Settings.from_env({"OTEL_OPENREPLAY_REPLAY_URL": "  "}).replay_url is None

    @pytest.mark.parametrize(
        ("raw", "value"),
        [
            (DASHBOARD, DASHBOARD),
            (DASHBOARD + "/", DASHBOARD),
            ("https://app.openreplay.com/12", "https://app.openreplay.com/12"),
            ("http://127.0.0.1:8080/openreplay/3/", "http://127.0.0.1:8080/openreplay/3"),
            (f" {DASHBOARD}\n", DASHBOARD),
        ],
    )
    def test_valid(self, raw, value):
        """Valid URLs are kept; a trailing slash and surrounding whitespace are dropped."""
        assert Settings.from_env({"OTEL_OPENREPLAY_REPLAY_URL": raw}).replay_url == value

    def test_keyword_wins(self):
        env = {"OTEL_OPENREPLAY_REPLAY_URL": DASHBOARD}
        assert Settings.from_env(env, replay_url="https://other.example/4/").replay_url == "https://other.example/4"

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("openreplay.example.com/3", "not an absolute http(s) URL"),
            ("ftp://openreplay.example.com/3", "not an absolute http(s) URL"),
            ("https:///3", "not an absolute http(s) URL"),
            ("https://openreplay.example.com/3?x=1", "query or fragment"),
            ("https://openreplay.example.com/3?", "query or fragment"),
            ("https://openreplay.example.com/3#top", "query or fragment"),
            ("https://openreplay example.com/3", "whitespace"),
            ("https://openreplay.example.com:99999/3", "not a URL"),
            ("https://openreplay.example.com", "does not end with the numeric project id"),
            ("https://openreplay.example.com/", "does not end with the numeric project id"),
            ("https://openreplay.example.com/openreplay", "does not end with the numeric project id"),
            ("https://openreplay.example.com/3/session", "does not end with the numeric project id"),
            ("https://openreplay.example.com/p3", "does not end with the numeric project id"),
        ],
    )
    def test_malformed_names_the_variable(self, raw, reason):
        """The message names the variable, says what is wrong and shows a valid example."""
        with pytest.raises(SettingsError, match=r"^OTEL_OPENREPLAY_REPLAY_URL=.*" + re.escape(reason)) as raised:
            Settings.from_env({"OTEL_OPENREPLAY_REPLAY_URL": raw})
        assert "e.g. https://openreplay.example.com/3" in str(raised.value)

    def test_malformed_keyword_names_the_keyword(self):
        with pytest.raises(SettingsError, match=r"^replay_url="):
            Settings.from_env({}, replay_url="nope")

    def test_direct_parse(self):
        assert parse_replay_url("X", "") is None


class TestOnRecordsAndSpans:
    """With the setting, the processors put the link on every record and span of a session."""

    @pytest.fixture
    def logs(self):
        memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(OpenReplayLogProcessor(Settings.from_env({}, replay_url=DASHBOARD)))
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        yield provider, memory
        provider.shutdown()

    def test_record_gets_the_link_at_its_time(self, logs):
        """A record of the session carries its replay link with jumpto = its time minus the session's start."""
        provider, memory = logs
        with session(session_id=SESSION):
            provider.get_logger("app").emit(
                body="boom", severity_number=SeverityNumber.ERROR, timestamp=ns(START_MS + 61_500) + 123
            )
        (data,) = memory.get_finished_logs()
        assert data.log_record.attributes[URL_KEY] == f"{DASHBOARD}/session/{SESSION}?jumpto=61500"

    def test_link_never_in_the_prefix(self, logs):
        """The message prefix stays exactly what OpenReplay searches for."""
        provider, memory = logs
        with session(session_id=SESSION):
            provider.get_logger("app").emit(body="boom", timestamp=ns(START_MS + 1))
        (data,) = memory.get_finished_logs()
        assert data.log_record.body == f"[openReplaySession.id={SESSION}] boom"

    def test_observed_time_when_no_time(self, logs):
        provider, memory = logs
        with session(session_id=SESSION):
            provider.get_logger("app").emit(body="boom", observed_timestamp=ns(START_MS + 7))
        (data,) = memory.get_finished_logs()
        assert data.log_record.attributes[URL_KEY] == f"{DASHBOARD}/session/{SESSION}?jumpto=7"

    def test_token_only_uses_the_derived_id(self, logs):
        provider, memory = logs
        with session(token=TOKEN):
            provider.get_logger("app").emit(body="boom", timestamp=ns(START_MS))
        (data,) = memory.get_finished_logs()
        assert data.log_record.attributes[URL_KEY] == f"{DASHBOARD}/session/{TOKEN_SESSION_ID}"

    def test_no_session_no_link(self, logs):
        provider, memory = logs
        provider.get_logger("app").emit(body="boom", timestamp=ns(START_MS))
        (data,) = memory.get_finished_logs()
        assert URL_KEY not in (data.log_record.attributes or {})

    def test_unset_changes_nothing(self):
        """Without the setting no record gets a link."""
        memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(OpenReplayLogProcessor(Settings.from_env({})))
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        with session(session_id=SESSION):
            provider.get_logger("app").emit(body="boom", timestamp=ns(START_MS + 1))
        (data,) = memory.get_finished_logs()
        assert URL_KEY not in data.log_record.attributes
        provider.shutdown()

    def test_configure_keyword_reaches_both_processors(self):
        """configure(replay_url=...) links records logged through stdlib logging, and spans, at the moment."""
        started = int(time.time() * 1000) - 5_000
        recent = flake_id(started)
        memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        wiring = configure(
            logger_provider=provider, tracer_provider=tracer_provider, capture_exceptions=False, replay_url=DASHBOARD
        )
        handler = otel_logging_handler(provider)
        logger = logging.getLogger("test_replay.configure")
        logger.addHandler(handler)
        try:
            with session(session_id=recent), tracer_provider.get_tracer("t").start_as_current_span("work"):
                logger.error("payment failed")
        finally:
            logger.removeHandler(handler)
            wiring.undo()
            provider.shutdown()
        (data,) = memory.get_finished_logs()
        (span,) = spans.get_finished_spans()
        for link in (data.log_record.attributes[URL_KEY], span.attributes[URL_KEY]):
            base, jumpto = link.split("?jumpto=")
            assert base == f"{DASHBOARD}/session/{recent}"
            assert 5_000 <= int(jumpto) < 65_000

    def test_span_gets_the_link_at_its_start(self):
        """A span of the session carries its replay link at its start time."""
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(OpenReplaySpanProcessor(Settings.from_env({}, replay_url=DASHBOARD)))
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with session(session_id=SESSION):
            tracer_provider.get_tracer("t").start_span("GET /checkout", start_time=ns(START_MS + 2_000)).end(
                end_time=ns(START_MS + 90_000)
            )
        (span,) = exporter.get_finished_spans()
        assert span.attributes[URL_KEY] == f"{DASHBOARD}/session/{SESSION}?jumpto=2000"

    def test_span_without_setting_has_no_link(self):
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(OpenReplaySpanProcessor(Settings.from_env({})))
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with session(session_id=SESSION):
            tracer_provider.get_tracer("t").start_span("work").end()
        (span,) = exporter.get_finished_spans()
        assert URL_KEY not in span.attributes

    def test_link_never_leaves_on_outgoing_requests(self):
        """Injected headers and baggage carry the session, never the link."""
        propagator = CompositePropagator(
            [
                OpenReplayPropagator(Settings.from_env({}, replay_url=DASHBOARD)),
                W3CBaggagePropagator(),
                TraceContextTextMapPropagator(),
            ]
        )
        carrier: dict[str, str] = {}
        with session(session_id=SESSION, propagate=True):
            propagator.inject(carrier)
        assert SESSION in " ".join(carrier.values())
        assert not any("session/" in value or "openreplay.example.com" in value for value in carrier.values())
        assert not any(URL_KEY.lower() in key.lower() for key in carrier)


class TestLinkCommand:
    """`otel-openreplay link` prints one link; errors go through the ERROR/TIP funnel."""

    def run(self, capsys, monkeypatch, *argv, env=DASHBOARD):
        if env is None:
            monkeypatch.delenv("OTEL_OPENREPLAY_REPLAY_URL", raising=False)
        else:
            monkeypatch.setenv("OTEL_OPENREPLAY_REPLAY_URL", env)
        code = cli.main(["link", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    def test_session_id_at_rfc3339(self, capsys, monkeypatch):
        code, out, err = self.run(capsys, monkeypatch, "--session-id", SESSION, "--at", "2026-11-26T14:07:41.5Z")
        assert (code, out, err) == (0, f"{DASHBOARD}/session/{SESSION}?jumpto=61500\n", "")

    def test_epoch_ms_and_offset_zone(self, capsys, monkeypatch):
        expected = f"{DASHBOARD}/session/{SESSION}?jumpto=1000\n"
        assert self.run(capsys, monkeypatch, "--session-id", SESSION, "--at", str(START_MS + 1000))[1] == expected
        at = "2026-11-26T15:06:41+01:00"
        assert self.run(capsys, monkeypatch, "--session-id", SESSION, "--at", at)[1] == expected

    def test_default_is_now(self, capsys, monkeypatch):
        """Without --at the link opens at the current moment of a session that started 10 s ago."""
        recent = flake_id(int(time.time() * 1000) - 10_000)
        code, out, _ = self.run(capsys, monkeypatch, "--session-id", recent)
        base, _, jumpto = out.strip().partition("?jumpto=")
        assert code == 0
        assert base == f"{DASHBOARD}/session/{recent}"
        assert 10_000 <= int(jumpto) < 70_000

    def test_token(self, capsys, monkeypatch):
        """A token links to the session id read from it."""
        code, out, _ = self.run(capsys, monkeypatch, "--token", TOKEN, "--at", "1")
        assert (code, out) == (0, f"{DASHBOARD}/session/{TOKEN_SESSION_ID}\n")

    def test_no_jumpto_is_explained(self, capsys, monkeypatch):
        """An id that is not a flake id: the link without jumpto, and a note on stderr saying why."""
        code, out, err = self.run(capsys, monkeypatch, "--session-id", "42", "--at", "2026-11-26T14:07:34Z")
        assert (code, out) == (0, f"{DASHBOARD}/session/42\n")
        assert "not within a day after the session's start (2019-02-12T19:33:20.000Z" in err

    def test_flag_wins_over_the_variable(self, capsys, monkeypatch):
        code, out, _ = self.run(
            capsys, monkeypatch, "--session-id", "42", "--at", "1", "--replay-url", "https://app.openreplay.com/7/"
        )
        assert code == 0
        assert out == "https://app.openreplay.com/7/session/42\n"

    @pytest.mark.parametrize(
        ("argv", "env", "error", "tip"),
        [
            (["--session-id", "42"], None, "ERROR: no OpenReplay dashboard URL", "TIP: set OTEL_OPENREPLAY_REPLAY_URL"),
            (["--session-id", "42"], "openreplay.example.com/3", "ERROR: OTEL_OPENREPLAY_REPLAY_URL=", "TIP: fix"),
            (["--session-id", "42", "--replay-url", "https://x/1#a"], None, "ERROR: --replay-url=", "TIP: fix"),
            (["--session-id", "12x"], DASHBOARD, "ERROR: '12x' is not a session id", ""),
            (["--token", "a b"], DASHBOARD, "ERROR: 'a b' is not a session token", "TIP:"),
            (["--token", "x-y.1.2.3"], DASHBOARD, "has no session id", "TIP: pass --session-id"),
            (["--session-id", "42", "--at", "yesterday"], DASHBOARD, "ERROR: 'yesterday' is not a time", "TIP: e.g."),
            (["--session-id", "42", "--at", "2026-11-26T14:07:34"], DASHBOARD, "is not a time", "TIP: e.g."),
            (["--session-id", "42", "--at", "2026-13-26T14:07:34Z"], DASHBOARD, "is not a valid time", "TIP: e.g."),
        ],
    )
    def test_errors(self, capsys, monkeypatch, argv, env, error, tip):
        code, out, err = self.run(capsys, monkeypatch, *argv, env=env)
        assert code == 2
        assert out == ""
        assert error in err
        assert tip in err
        assert "Traceback" not in err

    def test_needs_a_session(self, capsys, monkeypatch):
        code, _, err = self.run(capsys, monkeypatch)
        assert code == 2
        assert "--token" in err


class TestCheckReplayLine:
    """`es check`'s Replay line: its moment to the millisecond; an unusable variable only costs the line."""

    def test_jumpto_is_exact_to_the_millisecond(self):
        """A record at 2038-04-10T12:48:52.621Z, 1000 ms after the session's start: jumpto=1000 (float maths
        gave 999 for this moment)."""
        from otel_openreplay.cli.link import check_replay_link
        from otel_openreplay.doctor import CheckReport, Generation
        from otel_openreplay.generations import Entry, Target

        session_id = flake_id(2_154_516_532_621 - 1000)
        generation = Generation("1.21", "OpenReplay ≥ 1.21", "logs", {})
        generation.shown.append(Entry("2038-04-10T12:48:52.621Z", "error", "boom"))
        report = CheckReport(Target(None, session_id), "logs", "u", generations=[generation])
        assert check_replay_link(DASHBOARD, report) == f"{DASHBOARD}/session/{session_id}?jumpto=1000"

    def test_bad_variable_warns_and_the_check_goes_on(self, capsys, monkeypatch):
        """A malformed OTEL_OPENREPLAY_REPLAY_URL: a WARNING naming it, and the check still runs (here it
        finds no server: exit 3, not the usage error 2)."""
        monkeypatch.setenv("OTEL_OPENREPLAY_REPLAY_URL", "https://openreplay.example.com")
        code = cli.main(
            ["es", "check", "--session-id", "1", "--url", "http://127.0.0.1:9", "--user", "u", "--password", "p"]
        )
        err = capsys.readouterr().err
        assert code == 3
        assert err.startswith("WARNING: OTEL_OPENREPLAY_REPLAY_URL='https://openreplay.example.com': ")
        assert "without the Replay line" in err
        assert "ERROR: cannot connect to Elasticsearch" in err

    def test_bad_flag_stays_a_usage_error(self, capsys, monkeypatch):
        monkeypatch.delenv("OTEL_OPENREPLAY_REPLAY_URL", raising=False)
        code = cli.main(["es", "check", "--session-id", "1", "--url", "http://127.0.0.1:9", "--replay-url", "x"])
        assert code == 2
        assert capsys.readouterr().err.startswith("ERROR: --replay-url='x'")


class TestExporterSetting:
    """The Python exporter reads the same variable, or its keyword; a bad value names which."""

    def test_env_keyword_and_unset(self):
        from otel_openreplay.exporter import ElasticsearchLogExporter

        env = {"OTEL_OPENREPLAY_REPLAY_URL": DASHBOARD + "/"}
        assert ElasticsearchLogExporter(environ=env).replay_url == DASHBOARD
        assert (
            ElasticsearchLogExporter(environ=env, replay_url="https://o.example/9").replay_url == "https://o.example/9"
        )
        assert ElasticsearchLogExporter(environ={}).replay_url is None

    def test_malformed(self, caplog):
        """A bad variable is an ERROR naming it (the exporter still works, without links); a bad keyword raises."""
        from otel_openreplay.exporter import ElasticsearchLogExporter

        with caplog.at_level(logging.ERROR, logger="otel_openreplay.exporter"):
            exporter = ElasticsearchLogExporter(environ={"OTEL_OPENREPLAY_REPLAY_URL": "ftp://x/3"})
        assert exporter.replay_url is None
        assert "OTEL_OPENREPLAY_REPLAY_URL='ftp://x/3'" in caplog.text
        with pytest.raises(SettingsError, match=r"^replay_url="):
            ElasticsearchLogExporter(environ={}, replay_url="https://x/3?a=1")
