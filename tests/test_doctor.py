"""The doctor: OpenReplay's reads and rules as pure functions, then `es check` against a real server."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_openreplay import cli
from otel_openreplay.doctor import (
    CheckReport,
    Entry,
    Finding,
    Generation,
    Target,
    current_request,
    current_view,
    exit_code_for,
    explain_current_miss,
    explain_legacy_miss,
    legacy_request,
    legacy_token,
    legacy_view,
    parse_duration,
    parse_rfc3339,
    render_text,
    ui_level,
)
from otel_openreplay.exit_codes import ExitCode
from otel_openreplay.exporter import ElasticsearchLogExporter
from otel_openreplay.keys import create_key
from otel_openreplay.template import setup_index
from tests.conftest import TOKEN, TOKEN_SESSION_ID, otel_logging_handler
from tests.stack.es import ElasticsearchNode, client

DASH_TOKEN = "1bq7y3xsc6hdc.-1a.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
NOW = datetime(2026, 11, 26, 14, 10, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


def _source(message: str, **fields) -> dict:
    return {"_index": "logs", "_source": {"message": message, **fields}}


class TestRequests:
    """The requests are OpenReplay's, exactly as docs/DESIGN.md gives them."""

    def test_legacy(self):
        """<= 1.20: bool filter body; sort and scroll as URL parameters; 1000 per page."""
        assert legacy_request("logs", 1_795_000_000_000) == {
            "method": "POST",
            "path": "/logs/_search",
            "params": {"scroll": "2m", "sort": "utc_time:asc", "size": 1000},
            "body": {
                "query": {
                    "bool": {
                        "filter": [
                            {"match": {"message": {"query": "openReplaySessionToken="}}},
                            {"range": {"utc_time": {"gte": 1_795_000_000_000, "lte": "now"}}},
                            {"term": {"tags": "error"}},
                        ]
                    }
                }
            },
        }

    def test_current(self):
        """>= 1.21: match_phrase on message in `logs`, 1000 hits."""
        request = current_request("42")
        assert request["path"] == "/logs/_search"
        assert request["body"] == {"size": 1000, "query": {"match_phrase": {"message": "openReplaySession.id=42"}}}


class TestLegacyToken:
    """<= 1.20's regex."""

    def test_reads_token(self):
        """The token after the marker is read, case-insensitively."""
        assert legacy_token(f"[OPENREPLAYSESSIONTOKEN={TOKEN}] x") == TOKEN

    def test_cut_at_dash(self):
        """A `-` ends the token: only the part before it is read."""
        assert legacy_token(f"[openReplaySessionToken={DASH_TOKEN}] x") == "1bq7y3xsc6hdc."

    def test_none(self):
        """No marker, no token."""
        assert legacy_token("boom") is None


class TestParseRfc3339:
    """Go's time.RFC3339 parsing."""

    @pytest.mark.parametrize(
        "value", ["2026-11-26T14:07:34.120Z", "2026-11-26T14:07:34Z", "2026-11-26T14:07:34.1234567891+02:00"]
    )
    def test_valid(self, value):
        """Fraction optional and of any length; Z or an offset."""
        assert parse_rfc3339(value) is not None

    @pytest.mark.parametrize(
        "value", ["2026-11-26 14:07:34Z", "2026-11-26T14:07:34", "1795702054120", 1795702054120, None, "26/11/2026"]
    )
    def test_invalid(self, value):
        """No T, no zone, epoch numbers or other formats are refused."""
        assert parse_rfc3339(value) is None

    def test_value(self):
        """The instant is right, fraction included."""
        assert parse_rfc3339("2026-11-26T14:07:34.120Z") == datetime(2026, 11, 26, 14, 7, 34, 120000, timezone.utc)


class TestUiLevel:
    """>= 1.21's panel level rule."""

    @pytest.mark.parametrize(
        ("level", "shown"),
        [
            ("error", "error"),
            ("warning", "warning"),
            ("info", "info"),
            ("debug", "debug"),
            ("ERROR", "info"),
            ("fatal", "info"),
            ("warn", "info"),
            ("FATAL", "info"),
            ("Error", "info"),
            ("fatal error", "error"),  # a substring test, like the frontend's String.includes
            ("debugging info", "info"),  # error, warning, info, debug: the first that is in it
            (["error"], "error"),  # a list: an element test (Array.includes)
            (["ERROR"], "info"),
            (["error: x"], "info"),
            ([], "info"),
            (None, None),
            (3, None),
            (17, None),
            (True, None),
            ({"name": "error"}, None),
        ],
    )
    def test_levels(self, level, shown):
        """As the frontend's `level.includes(...)`: a text or a list shows a status, anything else breaks."""
        assert ui_level(level) == shown


class TestParseDuration:
    """--since values."""

    @pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800)])
    def test_valid(self, text, seconds):
        """Seconds, minutes, hours, days."""
        assert parse_duration(text) == seconds

    def test_combined(self):
        """Units combine."""
        assert parse_duration("1h30m") == 5400

    @pytest.mark.parametrize("text", ["", "h", "10", "1y", "-1h"])
    def test_invalid(self, text):
        """Anything else is refused."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(text)


class TestTarget:
    """The session asked about."""

    def test_token_derives_id(self):
        """A token brings its session id."""
        assert Target.of(token=TOKEN) == Target(TOKEN, TOKEN_SESSION_ID)

    def test_session_id(self):
        """A session id alone."""
        assert Target.of(session_id="42") == Target(None, "42")

    @pytest.mark.parametrize(("token", "session_id"), [("bad token", None), (None, "12a"), (None, None)])
    def test_invalid(self, token, session_id):
        """Malformed values or none are refused."""
        with pytest.raises(ValueError, match=r"session|token"):
            Target.of(token=token, session_id=session_id)


class TestLegacyView:
    """What <= 1.20 shows of its hits."""

    def test_shows_matching_token(self):
        """A hit with the target's token and an RFC 3339 time is shown as error."""
        hit = _source(f"[openReplaySessionToken={TOKEN}] boom", utc_time="2026-11-26T14:07:34.120Z")
        shown, findings = legacy_view([hit], Target.of(token=TOKEN))
        assert shown == [Entry("2026-11-26T14:07:34.120Z", "error", f"[openReplaySessionToken={TOKEN}] boom")]
        assert findings == []

    def test_dash_token_dropped(self):
        """A token with `-` is cut by the regex, and the doctor says so."""
        hit = _source(f"[openReplaySessionToken={DASH_TOKEN}] boom", utc_time="2026-11-26T14:07:34.120Z")
        shown, findings = legacy_view([hit], Target.of(token=DASH_TOKEN))
        assert shown == []
        assert [f.code for f in findings] == ["token-dash"]

    def test_bad_time_skipped(self):
        """A non-RFC 3339 utc_time is skipped, with a finding."""
        hit = _source(f"[openReplaySessionToken={TOKEN}] boom", utc_time="1795702054120")
        shown, findings = legacy_view([hit], Target.of(token=TOKEN))
        assert shown == []
        assert [f.code for f in findings] == ["bad-utc-time"]

    def test_session_id_target_matches_token_of_that_session(self):
        """Asked by session id, records whose token belongs to that session are shown."""
        hit = _source(f"[openReplaySessionToken={TOKEN}] boom", utc_time="2026-11-26T14:07:34.120Z")
        shown, _ = legacy_view([hit], Target.of(session_id=TOKEN_SESSION_ID))
        assert len(shown) == 1

    def test_other_session_ignored(self):
        """Another session's records are not shown and need no finding."""
        hit = _source("[openReplaySessionToken=zz.1.2.x] boom", utc_time="2026-11-26T14:07:34.120Z")
        assert legacy_view([hit], Target.of(token=TOKEN)) == ([], [])


class TestCurrentView:
    """What >= 1.21's panel shows."""

    def test_shown_with_level(self):
        """@timestamp, level and message are shown."""
        hit = _source("[openReplaySession.id=42] boom", level="error", **{"@timestamp": "2026-11-26T14:07:34.120Z"})
        shown, findings = current_view([hit])
        assert shown == [Entry("2026-11-26T14:07:34.120Z", "error", "[openReplaySession.id=42] boom")]
        assert findings == []

    def test_no_level_breaks(self):
        """A hit without level is a problem (the panel breaks)."""
        _, findings = current_view([_source("x")])
        assert [f.code for f in findings] == ["no-level"]
        assert findings[0].problem

    def test_uppercase_level_noted(self):
        """`ERROR` shows as info: a note."""
        shown, findings = current_view([_source("x", level="ERROR")])
        assert shown[0].level == "info"
        assert [(f.code, f.problem) for f in findings] == [("uppercase-level", False)]

    @pytest.mark.parametrize("level", ["FATAL", "critical", "warn", "err"])
    def test_other_level_noted(self, level):
        """A level without error/warning/info/debug in it shows as info: a note naming it."""
        shown, findings = current_view([_source("x", level=level)])
        assert shown[0].level == "info"
        assert [(f.code, f.problem) for f in findings] == [("unknown-level", False)]
        assert repr(level) in findings[0].text

    def test_info_is_no_note(self):
        """`info` (and a text holding it) shows as info, as written: nothing to say."""
        assert current_view([_source("x", level="info"), _source("y", level="severe info")])[1] == []

    def test_a_full_page_is_noted(self):
        """1000 hits: the panel shows no more, in relevance order, so the doctor notes some may be missing."""
        shown, findings = current_view([_source(f"r{n}", level="error") for n in range(1000)])
        assert len(shown) == 1000
        assert [(f.code, f.problem) for f in findings] == [("page-full", False)]
        assert current_view([_source("r", level="error")] * 999)[1] == []

    def test_one_record_without_level_fails_the_whole_panel(self):
        """Good records beside one without `level` are not shown either: the generation is not ok."""
        hits = [_source(f"r{n}", level="error") for n in range(3)] + [_source("bad", level=17)]
        shown, findings = current_view(hits)
        assert [f.code for f in findings] == ["no-level"]
        assert "1 of 4 records" in findings[0].text
        assert "Failed to fetch logs from Elasticsearch" in findings[0].text
        generation = Generation("1.21", "OpenReplay ≥ 1.21", "logs", {}, shown=shown, findings=findings)
        assert not generation.ok
        report = CheckReport(Target.of(session_id="1"), "logs", "user u", generations=[generation])
        assert exit_code_for(report) == ExitCode.NOTHING
        assert "finds 4 records but shows none (see PROBLEM)" in render_text(report)


class TestExplainMisses:
    """Why a generation misses a record of the session."""

    target = Target.of(token=TOKEN)

    def test_no_error_tag(self):
        """<= 1.20 polls only tags: error."""
        source = {
            "message": f"[openReplaySessionToken={TOKEN}] x",
            "tags": ["warning"],
            "utc_time": "2026-11-26T14:07:34Z",
        }
        assert explain_legacy_miss(source, self.target, 0, NOW_MS).code == "no-error-tag"

    def test_outside_window(self):
        """A record older than the window is a note about the poll window."""
        source = {
            "message": f"[openReplaySessionToken={TOKEN}] x",
            "tags": ["error"],
            "utc_time": "2026-11-20T00:00:00Z",
        }
        finding = explain_legacy_miss(source, self.target, NOW_MS - 86_400_000, NOW_MS)
        assert (finding.code, finding.problem) == ("outside-window", False)

    def test_no_token_prefix(self):
        """A record without the token marker cannot be polled."""
        source = {"message": f"[openReplaySession.id={TOKEN_SESSION_ID}] x", "tags": ["error"]}
        assert explain_legacy_miss(source, self.target, 0, NOW_MS).code == "no-token-prefix"

    def test_current_other_index(self):
        """>= 1.21 reads only `logs`."""
        assert explain_current_miss({"message": "x"}, self.target, "app-logs").code == "other-index"

    def test_current_no_id_prefix(self):
        """A record without the id part cannot be found by >= 1.21."""
        source = {"message": f"[openReplaySessionToken={TOKEN}] x"}
        assert explain_current_miss(source, self.target, "logs").code == "no-id-prefix"


class TestExitCode:
    """Exit codes by priority."""

    def _report(self, general=(), legacy=(), shown=False) -> CheckReport:
        report = CheckReport(Target.of(session_id="1"), "logs", "user u", findings=list(general))
        generation = Generation("1.20", "t", "logs", {}, findings=list(legacy))
        if shown:
            generation.shown.append(Entry("t", "error", "m"))
        report.generations.append(generation)
        return report

    def test_found(self):
        """Records shown: 0, even with a mapping problem elsewhere."""
        assert exit_code_for(self._report(legacy=[Finding("mapping", "x")], shown=True)) == ExitCode.FOUND

    def test_order(self):
        """Connect beats auth beats found; privilege beats index beats nothing."""
        assert exit_code_for(self._report(general=[Finding("connect", "x")], shown=True)) == ExitCode.CONNECT
        assert exit_code_for(self._report(general=[Finding("auth", "x")])) == ExitCode.AUTH
        both = [Finding("privilege", "x"), Finding("index-missing", "y")]
        assert exit_code_for(self._report(legacy=both)) == ExitCode.AUTH
        assert exit_code_for(self._report(legacy=[Finding("mapping", "y")])) == ExitCode.INDEX
        assert exit_code_for(self._report()) == ExitCode.NOTHING


class TestRenderText:
    """The terminal report."""

    def test_lines(self):
        """Each generation says what it shows, each record on one line, each finding with its tip."""
        report = CheckReport(Target.of(session_id="1"), "logs", "user u")
        generation = Generation("1.21", "OpenReplay ≥ 1.21", "logs", {})
        generation.shown.append(Entry("2026-11-26T14:07:34.120Z", "error", "boom\nTraceback\nX"))
        generation.findings.append(Finding("uppercase-level", "text", "tip", problem=False))
        report.generations.append(generation)
        text = render_text(report)
        assert "OpenReplay ≥ 1.21, index logs: the replay shows 1 record" in text
        assert "2026-11-26T14:07:34.120Z  error    boom  (+2 lines)" in text
        assert "note: text\n    TIP: tip" in text


class TestCheckUsage:
    """`es check` usage errors and a server that is not there."""

    def test_unreachable(self, capsys):
        """Nothing listening: exit 3, ERROR and TIP on stderr, no traceback."""
        code = cli.main(
            ["es", "check", "--session-id", "1", "--url", "http://127.0.0.1:9", "--user", "u", "--password", "p"]
        )
        err = capsys.readouterr().err
        assert code == 3
        assert err.startswith("ERROR: cannot connect to Elasticsearch")
        assert "TIP:" in err
        assert "Traceback" not in err

    def test_unreachable_json(self, capsys):
        """With --json the failure is a finding in the object, still exit 3."""
        code = cli.main(["es", "check", "--session-id", "1", "--url", "http://127.0.0.1:9", "--json"])
        assert code == 3
        assert json.loads(capsys.readouterr().out)["findings"][0]["code"] == "connect"


# --- against a real Elasticsearch -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doctor_node():
    """A node of this module's own: these tests break and rebuild the `logs` index on purpose."""
    with ElasticsearchNode() as node:
        with client(node) as admin:
            setup_index(admin, "logs")
        yield node


@pytest.fixture
def admin(doctor_node):
    es = client(doctor_node)
    yield es
    es.close()


def _check(node, *args: str, api_key: str | None = None) -> tuple[int, dict]:
    auth = ["--api-key", api_key] if api_key else ["--user", node.user, "--password", node.password]
    argv = ["es", "check", "--url", node.url, *auth, "--json", *args]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, json.loads(out.getvalue())


def _codes(report: dict, generation: str | None = None) -> set[str]:
    if generation is None:
        return {f["code"] for f in report["findings"]}
    (gen,) = [g for g in report["generations"] if g["name"] == generation]
    return {f["code"] for f in gen["findings"]}


def _shown(report: dict, generation: str) -> list[dict]:
    (gen,) = [g for g in report["generations"] if g["name"] == generation]
    return gen["shown"]


def _readme_block(marker: str) -> str:
    """The README's one ``sh`` block containing ``marker``."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = [block for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL) if marker in block]
    return block


def _new_token() -> str:
    """A fresh token in OpenReplay's shape (12 base36 digits of session id), unique per test."""
    number, digits = uuid.uuid4().int % 36**12, ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return f"{digits or '0'}.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"


def _session_of(token: str) -> str:
    return str(int(token.split(".")[0], 36))


def _write(admin, document: dict, index: str = "logs") -> None:
    admin.index(index=index, document=document, refresh=True)


def _document(token: str, *, session_id: str | None = None, when: datetime | None = None, **fields) -> dict:
    moment = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sid = session_id or _session_of(token)
    doc = {
        "@timestamp": moment,
        "utc_time": moment,
        "message": f"[openReplaySessionToken={token}] [openReplaySession.id={sid}] boom",
        "tags": ["error"],
        "level": "error",
    }
    doc.update(fields)
    return {key: value for key, value in doc.items() if value is not None}


@pytest.mark.e2e
class TestCheckAgainstElasticsearch:
    """`es check` output and exit code for found, not found and each misconfiguration."""

    def test_found_through_the_exporter(self, doctor_node, admin, capsys):
        """Records written by the exporter via the real SDK are shown by both generations: exit 0."""
        token = _new_token()
        writer = create_key(admin, "writer", "logs")
        exporter = ElasticsearchLogExporter(doctor_node.url, api_key=writer.encoded, environ={})
        provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        logger = logging.getLogger("tests.doctor.shop")
        logger.propagate = False
        handler = otel_logging_handler(provider)
        logger.addHandler(handler)
        try:
            logger.error("payment failed", extra={"openReplaySessionToken": token})
            provider.force_flush()
        finally:
            logger.removeHandler(handler)
            provider.shutdown()
        admin.indices.refresh(index="logs")
        reader = create_key(admin, "openreplay", "logs", legacy=True)
        code, report = _check(doctor_node, "--token", token, api_key=reader.encoded)
        assert code == 0
        for generation in ("1.20", "1.21"):
            shown = _shown(report, generation)
            assert len(shown) == 1, report
            (entry,) = shown
            assert entry["level"] == "error"
            assert entry["message"].endswith("payment failed")
        assert report["credentials"].startswith("API key openreplay-read-logs")
        code = cli.main(
            ["es", "check", "--url", doctor_node.url, "--api-key", reader.encoded, "--session-id", _session_of(token)]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert "OpenReplay ≥ 1.21 (session id), index logs: the replay shows 1 record" in out
        assert "payment failed" in out

    def test_not_found(self, doctor_node):
        """A session with no record: exit 1 and a finding saying nothing is there at all."""
        code, report = _check(doctor_node, "--token", _new_token())
        assert code == 1
        assert "no-records" in _codes(report)

    def test_index_missing(self, doctor_node):
        """The configured index does not exist: exit 5."""
        code, report = _check(doctor_node, "--token", _new_token(), "--index", "nosuch-index")
        assert code == 5
        assert "index-missing" in _codes(report, "1.20")

    def test_logs_missing(self, doctor_node, admin):
        """`logs` does not exist: both generations say so, exit 5."""
        admin.indices.delete(index="logs")
        try:
            code, report = _check(doctor_node, "--session-id", "42")
            assert code == 5
            assert "index-missing" in _codes(report, "1.21")
        finally:
            setup_index(admin, "logs")

    def test_message_keyword(self, doctor_node, admin):
        """`message` mapped keyword: nothing matches, and the doctor names the field: exit 5."""
        admin.indices.delete(index="logs")
        try:
            admin.indices.create(
                index="logs",
                mappings={"properties": {"message": {"type": "keyword"}, "utc_time": {"type": "keyword"}}},
            )
            token = _new_token()
            _write(admin, _document(token))
            code, report = _check(doctor_node, "--token", token)
            assert code == 5
            texts = " ".join(f["text"] for g in report["generations"] for f in g["findings"])
            assert "`message` is mapped as keyword" in texts
            assert "`utc_time` is mapped as keyword" in texts
            assert _shown(report, "1.21") == []
        finally:
            admin.indices.delete(index="logs")
            setup_index(admin, "logs")

    def test_no_level(self, doctor_node, admin):
        """Records without `level` break >= 1.21's panel; without tags <= 1.20 misses them: exit 1."""
        token = _new_token()
        _write(admin, _document(token, level=None, tags=None))
        code, report = _check(doctor_node, "--token", token)
        assert code == 1
        assert "no-level" in _codes(report, "1.21")
        assert "no-error-tag" in _codes(report, "1.20")

    def test_uppercase_level(self, doctor_node, admin):
        """`ERROR` shows as info: found (exit 0) with a note."""
        token = _new_token()
        _write(admin, _document(token, level="ERROR"))
        code, report = _check(doctor_node, "--token", token)
        assert code == 0
        assert "uppercase-level" in _codes(report, "1.21")
        assert _shown(report, "1.21")[0]["level"] == "info"

    def test_the_readme_command_checks_the_pasted_key(self, doctor_node, admin):
        """The README's command, as written, with the id and api_key pasted into OpenReplay's form: exit 0
        for the right pair, 4 for a wrong api_key (OpenReplay's own form saves either)."""
        block = _readme_block("printf '%s:%s'")
        token = _new_token()
        _write(admin, _document(token))
        key = create_key(admin, "openreplay", "logs")
        results = {}
        for name, secret in (("right", key.api_key), ("wrong", key.api_key[::-1])):
            command = (
                block.replace("<the URL as typed in the form>", doctor_node.url)
                .replace("<id>", key.id)
                .replace("<api_key>", secret)
                .replace("<the id of a session that logged an error>", _session_of(token))
            )
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
            results[name] = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, env={**os.environ, "PATH": path}, timeout=120
            )
        assert results["right"].returncode == 0, results["right"].stderr
        assert f"(id {key.id})" in results["right"].stdout
        assert "OpenReplay ≥ 1.21 (session id), index logs: the replay shows 1 record" in results["right"].stdout
        assert results["wrong"].returncode == 4, results["wrong"].stderr
        assert "ERROR: Elasticsearch refused the credentials" in results["wrong"].stderr

    def test_privilege_missing(self, doctor_node, admin):
        """A key without `read` on `logs`: exit 4 and the missing privilege named."""
        key = create_key(admin, "openreplay", "other-index")
        code, report = _check(doctor_node, "--token", _new_token(), api_key=key.encoded)
        assert code == 4
        assert "privilege" in _codes(report)
        assert any("lack `read` on `logs`" in f["text"] for f in report["findings"])

    def test_bad_credentials(self, doctor_node, capsys):
        """A key Elasticsearch does not know: exit 4, ERROR on stderr."""
        code = cli.main(
            ["es", "check", "--url", doctor_node.url, "--api-key", "a2V5LWlkOmtleS1zZWNyZXQ=", "--session-id", "1"]
        )
        assert code == 4
        assert capsys.readouterr().err.startswith("ERROR: Elasticsearch refused the credentials")

    def test_token_with_dash(self, doctor_node, admin):
        """A token with `-`: <= 1.20 cuts it (finding), >= 1.21 finds the record (exit 0)."""
        token = _new_token().replace(".0.", ".-1a.")
        _write(admin, _document(token))
        code, report = _check(doctor_node, "--token", token)
        assert code == 0
        assert "token-dash" in _codes(report, "1.20")
        assert _shown(report, "1.20") == []
        assert len(_shown(report, "1.21")) == 1

    def test_outside_window(self, doctor_node, admin):
        """A record older than 24 h is outside <= 1.20's first poll; --since 72h shows it."""
        token = _new_token()
        _write(admin, _document(token, when=datetime.now(timezone.utc) - timedelta(hours=50)))
        code, report = _check(doctor_node, "--token", token)
        assert code == 0
        assert "outside-window" in _codes(report, "1.20")
        assert _shown(report, "1.20") == []
        code, report = _check(doctor_node, "--token", token, "--since", "72h")
        assert len(_shown(report, "1.20")) == 1

    def test_other_index_for_current(self, doctor_node, admin):
        """Records in another index: <= 1.20 finds them there, >= 1.21 says it reads only `logs`."""
        token = _new_token()
        setup_index(admin, "app-logs")
        _write(admin, _document(token), index="app-logs")
        code, report = _check(doctor_node, "--token", token, "--index", "app-logs")
        assert code == 0
        assert len(_shown(report, "1.20")) == 1
        assert "other-index" in _codes(report, "1.21")
