"""The direct exporter and its connection settings: unit tests, then against a real Elasticsearch."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import logging
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from elasticsearch import ApiError
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from otel_openreplay import connection
from otel_openreplay.connection import SPECS, ConnectionSettings, make_client, redact_url
from otel_openreplay.exporter import ElasticsearchLogExporter, ExportResult
from otel_openreplay.keys import role_descriptors
from otel_openreplay.layout import document_id, to_document
from otel_openreplay.settings import SettingsError
from otel_openreplay.template import setup_index
from otel_openreplay.write_errors import Hold, classify_item, classify_request
from tests.conftest import otel_logging_handler
from tests.fixtures.documents.golden import cases, sdk_record
from tests.stack.es import ElasticsearchNode, client

ENCODED = base64.b64encode(b"key-id:key-secret").decode()
ALL_VARIABLES = [spec.env for spec in SPECS]


def unreachable_url() -> str:
    """A loopback URL where nothing listens (a port just released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class TestConnectionSettings:
    """Settings come from OPENREPLAY_* variables and keywords, validated with the variable named."""

    def test_defaults(self):
        """An empty environment gives every documented default."""
        settings = ConnectionSettings.from_env({})
        assert settings == ConnectionSettings(url="http://localhost:9200", index="logs", min_severity_number=17)
        assert settings.api_key is None
        assert settings.user is None
        assert settings.password is None
        assert settings.ca_certs is None

    def test_spec_defaults_are_the_constants(self):
        """The table's defaults are the named constants, each stated once."""
        defaults = {spec.env: spec.default for spec in SPECS}
        assert defaults["OPENREPLAY_ES_URL"] == connection.DEFAULT_URL
        assert defaults["OPENREPLAY_ES_INDEX"] == connection.DEFAULT_INDEX
        assert defaults["OPENREPLAY_MIN_SEVERITY_NUMBER"] == str(connection.DEFAULT_MIN_SEVERITY_NUMBER)
        assert ALL_VARIABLES == [
            "OPENREPLAY_ES_URL",
            "OPENREPLAY_ES_API_KEY",
            "OPENREPLAY_ES_USER",
            "OPENREPLAY_ES_PASSWORD",
            "OPENREPLAY_ES_CA_CERTS",
            "OPENREPLAY_ES_INDEX",
            "OPENREPLAY_MIN_SEVERITY_NUMBER",
        ]

    def test_environment_read(self, tmp_path):
        """Each variable is read."""
        ca = tmp_path / "ca.pem"
        ca.write_text("pem")
        env = {
            "OPENREPLAY_ES_URL": "https://es.internal:9243",
            "OPENREPLAY_ES_API_KEY": ENCODED,
            "OPENREPLAY_ES_CA_CERTS": str(ca),
            "OPENREPLAY_ES_INDEX": "app-logs",
            "OPENREPLAY_MIN_SEVERITY_NUMBER": "13",
        }
        settings = ConnectionSettings.from_env(env)
        assert (settings.url, settings.api_key, settings.ca_certs) == (env["OPENREPLAY_ES_URL"], ENCODED, str(ca))
        assert (settings.index, settings.min_severity_number) == ("app-logs", 13)

    def test_keywords_win(self):
        """A keyword that is not None overrides its variable."""
        settings = ConnectionSettings.from_env({"OPENREPLAY_ES_INDEX": "a"}, index="b", url=None)
        assert settings.index == "b"

    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("OPENREPLAY_ES_URL", "localhost:9200", "expected http(s)://host:port"),
            ("OPENREPLAY_ES_URL", "ftp://host", "expected http(s)://host:port"),
            ("OPENREPLAY_ES_API_KEY", "key-id:key-secret", "that is id:api_key"),
            ("OPENREPLAY_ES_API_KEY", "not base64!", "not an encoded API key"),
            ("OPENREPLAY_ES_CA_CERTS", "/nonexistent/ca.pem", "no such file"),
            ("OPENREPLAY_ES_INDEX", "Logs", "not a valid index name"),
            ("OPENREPLAY_ES_INDEX", "_logs", "not a valid index name"),
            ("OPENREPLAY_ES_INDEX", "a,b", "not a valid index name"),
            ("OPENREPLAY_MIN_SEVERITY_NUMBER", "ERROR", "expected a severity number"),
            ("OPENREPLAY_MIN_SEVERITY_NUMBER", "25", "expected a severity number"),
            ("OPENREPLAY_MIN_SEVERITY_NUMBER", "0", "expected a severity number"),
        ],
    )
    def test_bad_value_names_the_variable(self, variable, value, expected):
        """A bad value raises SettingsError naming the variable and what is expected."""
        with pytest.raises(SettingsError, match=variable) as raised:
            ConnectionSettings.from_env({variable: value})
        assert expected in str(raised.value)

    def test_user_needs_password(self):
        """A user without a password names the missing variable."""
        with pytest.raises(SettingsError, match="OPENREPLAY_ES_PASSWORD is not set"):
            ConnectionSettings.from_env({"OPENREPLAY_ES_USER": "writer"})

    def test_one_way_to_authenticate(self):
        """An API key and a user together are refused."""
        env = {"OPENREPLAY_ES_API_KEY": ENCODED, "OPENREPLAY_ES_USER": "u", "OPENREPLAY_ES_PASSWORD": "p"}
        with pytest.raises(SettingsError, match="choose one"):
            ConnectionSettings.from_env(env)

    def test_unknown_keyword(self):
        """An unknown keyword is refused with the known ones listed."""
        with pytest.raises(SettingsError, match="unknown setting 'host'"):
            ConnectionSettings.from_env({}, host="x")

    def test_secrets_never_shown(self):
        """repr and describe() show neither the API key, nor a password, nor one in the URL."""
        keyed = ConnectionSettings.from_env({"OPENREPLAY_ES_API_KEY": ENCODED})
        assert "key-secret" not in repr(keyed) + keyed.describe()
        assert ENCODED not in repr(keyed) + keyed.describe()
        assert "API key key-id" in keyed.describe()
        user = ConnectionSettings.from_env({"OPENREPLAY_ES_USER": "u", "OPENREPLAY_ES_PASSWORD": "hunter2"})
        assert "hunter2" not in repr(user) + user.describe()
        in_url = ConnectionSettings.from_env({"OPENREPLAY_ES_URL": "https://u:hunter2@es:9243"})
        assert "hunter2" not in in_url.describe()
        assert redact_url("https://u:hunter2@es:9243/x") == "https://u:***@es:9243/x"


class TestMakeClient:
    """The client factory."""

    def test_untraced_by_default(self):
        """The client's native OTel spans are off, also on clients derived with options()."""
        es = make_client(ConnectionSettings.from_env({}))
        try:
            assert es._otel.enabled is False
            assert es.options(request_timeout=1)._otel.enabled is False
        finally:
            es.close()


class TestExporterUnit:
    """Exporter behaviour that needs no server."""

    def test_built_with_no_arguments_from_the_environment(self, monkeypatch):
        """The SDK's no-argument construction reads the OPENREPLAY_* variables."""
        monkeypatch.setenv("OPENREPLAY_ES_INDEX", "from-env")
        monkeypatch.setenv("OPENREPLAY_MIN_SEVERITY_NUMBER", "21")
        exporter = ElasticsearchLogExporter()
        try:
            assert exporter.settings.index == "from-env"
            assert exporter.settings.min_severity_number == 21
        finally:
            exporter.shutdown()

    def test_entry_point(self, monkeypatch):
        """OTEL_LOGS_EXPORTER=openreplay_elasticsearch resolves to the class."""
        (point,) = entry_points(group="opentelemetry_logs_exporter", name="openreplay_elasticsearch")
        assert point.load() is ElasticsearchLogExporter

    def test_bad_environment_raises_naming_the_variable(self, monkeypatch):
        """A bad variable fails at construction, naming it."""
        monkeypatch.setenv("OPENREPLAY_MIN_SEVERITY_NUMBER", "error")
        with pytest.raises(SettingsError, match="OPENREPLAY_MIN_SEVERITY_NUMBER"):
            ElasticsearchLogExporter()

    def test_unreachable_server_fails_without_raising(self, caplog):
        """Connection refused: FAILURE within the deadline, a warning logged, the record kept, nothing raised."""
        exporter = ElasticsearchLogExporter(unreachable_url(), deadline=1.0, environ={})
        record = sdk_record(cases()[0].record)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
            assert exporter.export([record]) == ExportResult.FAILURE
        assert time.monotonic() - started < 5
        assert "unreachable" in caplog.text
        assert "1 records kept to retry" in caplog.text
        assert exporter.backlog == 1
        with caplog.at_level(logging.ERROR, logger="otel_openreplay.exporter"):
            exporter.shutdown(timeout_millis=100)
        assert "still unreachable at shutdown: 1 records lost" in caplog.text

    def test_outage_backlog_is_bounded_and_does_not_block(self, caplog):
        """During an outage's backoff an export returns at once; beyond backlog_size the oldest go, counted."""
        exporter = ElasticsearchLogExporter(unreachable_url(), deadline=0.2, backlog_size=2, environ={})
        golden = [case for case in cases() if case.document is not None][:3]
        exporter.export([sdk_record(golden[0].record)])
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="otel_openreplay.exporter"):
            exporter.export([sdk_record(golden[1].record)])
            exporter.export([sdk_record(golden[2].record)])
        assert time.monotonic() - started < 0.2
        assert exporter.backlog == 2
        assert "backlog full (2 documents): 1 oldest records lost" in caplog.text
        exporter.shutdown(timeout_millis=100)

    def test_nothing_to_write_needs_no_server(self):
        """Below-threshold records and the exporter's own records are dropped without a request."""
        exporter = ElasticsearchLogExporter(unreachable_url(), deadline=0.0, environ={})
        warning = next(c for c in cases() if c.name == "warning_not_written")
        own = {**cases()[0].record, "scope": "otel_openreplay.exporter"}
        client_logs = {**cases()[0].record, "scope": "elastic_transport.transport"}
        batch = [sdk_record(warning.record), sdk_record(own), sdk_record(client_logs)]
        assert exporter.export(batch) == ExportResult.SUCCESS
        exporter.shutdown()

    def test_nested_export_returns_at_once(self, monkeypatch):
        """An export started while exporting (a synchronous processor re-entering) does nothing."""
        exporter = ElasticsearchLogExporter(unreachable_url(), deadline=0.0, environ={})
        inner: list[object] = []

        def write(pending, rejected, retries):
            inner.append(exporter.export([sdk_record(cases()[0].record)]))
            pending.clear()

        monkeypatch.setattr(exporter, "_write", write)
        assert exporter.export([sdk_record(cases()[0].record)]) == ExportResult.SUCCESS
        assert inner == [ExportResult.SUCCESS]
        exporter.shutdown()

    def test_unexpected_error_is_contained(self, monkeypatch, caplog):
        """Any exception while writing becomes FAILURE and a log line; the records stay in the backlog."""
        exporter = ElasticsearchLogExporter(unreachable_url(), environ={})

        def boom(pending, rejected, retries):
            raise RuntimeError("surprise")

        monkeypatch.setattr(exporter, "_write", boom)
        with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
            assert exporter.export([sdk_record(cases()[0].record)]) == ExportResult.FAILURE
        assert "RuntimeError: surprise" in caplog.text
        assert "1 records kept to retry" in caplog.text
        assert exporter.backlog == 1
        exporter.shutdown(timeout_millis=100)

    def test_stalled_server_keeps_the_batch_and_the_backlog(self, caplog):
        """A server that accepts but never answers (a request timeout) is an outage: nothing is dropped."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(16)  # the kernel accepts the connections; nobody ever answers
            url = f"http://127.0.0.1:{server.getsockname()[1]}"
            exporter = ElasticsearchLogExporter(url, request_timeout=0.2, deadline=0.0, environ={})
            golden = [case for case in cases() if case.document is not None][:2]
            with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
                assert exporter.export([sdk_record(golden[0].record)]) == ExportResult.FAILURE
                assert exporter.backlog == 1
                exporter._retry_at = 0.0  # the outage's backoff over: the next export tries again
                assert exporter.export([sdk_record(golden[1].record)]) == ExportResult.FAILURE
            assert exporter.backlog == 2  # the new batch and the backlog
            assert "ConnectionTimeout" in caplog.text
            assert "lost" not in caplog.text
            exporter.shutdown(timeout_millis=100)

    @pytest.mark.parametrize("status", [401, 403, 400, 503])
    def test_refused_request_keeps_the_records(self, status, caplog):
        """A whole bulk request refused (401/403 while a node starts, or any other status): kept, reason logged."""
        with _answering(status) as url:
            exporter = ElasticsearchLogExporter(url, deadline=0.0, max_retries=0, environ={})
            with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
                assert exporter.export([sdk_record(cases()[0].record)]) == ExportResult.FAILURE
            assert exporter.backlog == 1
            assert f"HTTP {status}" in caplog.text
            assert "1 records kept to retry" in caplog.text
            exporter.shutdown(timeout_millis=100)

    def test_bad_replay_url_variable_is_logged_not_raised(self, caplog):
        """OTEL_OPENREPLAY_REPLAY_URL malformed: the exporter is built (the SDK's configurator must not fail),
        an ERROR names the variable, and documents are written without links."""
        env = {"OTEL_OPENREPLAY_REPLAY_URL": "https://openreplay.example.com"}
        with caplog.at_level(logging.ERROR, logger="otel_openreplay.exporter"):
            exporter = ElasticsearchLogExporter(unreachable_url(), environ=env)
        assert exporter.replay_url is None
        assert "OTEL_OPENREPLAY_REPLAY_URL=" in caplog.text
        assert "without replay links" in caplog.text
        with pytest.raises(SettingsError, match=r"^replay_url="):  # the caller's own bad argument still raises
            ElasticsearchLogExporter(unreachable_url(), replay_url="https://openreplay.example.com", environ={})
        exporter.shutdown()

    def test_shutdown(self):
        """After shutdown the exporter refuses work; shutdown twice is fine; flush is always complete."""
        exporter = ElasticsearchLogExporter(unreachable_url(), environ={})
        assert exporter.force_flush() is True
        exporter.shutdown()
        exporter.shutdown()
        assert exporter.export([sdk_record(cases()[0].record)]) == ExportResult.FAILURE


@contextlib.contextmanager
def _answering(status: int) -> Iterator[str]:
    """A loopback HTTP server answering every request with ``status`` and an Elasticsearch error body."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"type": "security_exception", "reason": "not yet"}, "status": status})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_PUT = do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- against a real Elasticsearch -----------------------------------------------------------------------------


def _index_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _writer_key(endpoint, index: str) -> str:
    with client(endpoint) as admin:
        created = admin.security.create_api_key(name="test-writer", role_descriptors=role_descriptors("writer", index))
    return created["encoded"]


class _KeepOpen(LogRecordExporter):
    """Delegates to an exporter but ignores shutdown, so several providers can share it."""

    def __init__(self, exporter: LogRecordExporter) -> None:
        self.exporter = exporter

    def export(self, batch):
        return self.exporter.export(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _emit_through_sdk(exporter: ElasticsearchLogExporter, records: list[dict]) -> list:
    """Emit golden records through LoggerProvider + BatchLogRecordProcessor; return what the SDK exported."""
    exported: list = []
    by_resource: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        by_resource[tuple(sorted((record.get("resource") or {}).items()))].append(record)
    for resource, group in by_resource.items():
        memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=Resource(dict(resource)), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(memory))
        provider.add_log_record_processor(BatchLogRecordProcessor(_KeepOpen(exporter)))
        for record in group:
            logger = provider.get_logger(record.get("scope") or "")
            logger.emit(
                LogRecord(
                    timestamp=record.get("time_unix_nano"),
                    observed_timestamp=record.get("observed_time_unix_nano"),
                    trace_id=int(record["trace_id"], 16) if record.get("trace_id") else None,
                    span_id=int(record["span_id"], 16) if record.get("span_id") else None,
                    severity_number=SeverityNumber(record["severity_number"]),
                    severity_text=record.get("severity_text"),
                    body=record.get("body"),
                    attributes=record.get("attributes"),
                )
            )
        provider.force_flush()
        exported += memory.get_finished_logs()
        provider.shutdown()
    return exported


@pytest.mark.e2e
class TestExporterAgainstElasticsearch:
    """The exporter writes exactly the layout documents, idempotently, and reports refusals."""

    def test_documents_equal_the_layout(self, es_node, es_client):
        """Golden records emitted through the real SDK land as their golden documents, under their ids."""
        index = _index_name("golden")
        setup_index(es_client, index)
        exporter = ElasticsearchLogExporter(es_node.url, api_key=_writer_key(es_node, index), index=index, environ={})
        # cases with writer settings need them: tests/test_replay_e2e.py exports the replay-URL ones, and
        # tests/test_layout.py and tests/test_collector.py check the lowered threshold
        golden = [case for case in cases() if case.record.get("time_unix_nano") and not case.writer]
        exported = _emit_through_sdk(exporter, [case.record for case in golden])
        es_client.indices.refresh(index=index)
        stored = {
            hit["_id"]: hit["_source"]
            for hit in es_client.search(index=index, size=100, query={"match_all": {}})["hits"]["hits"]
        }
        expected = {document_id(r): to_document(r) for r in exported if to_document(r) is not None}
        assert stored == expected
        by_message = {doc["message"]: doc for doc in stored.values()}
        for case in golden:
            if case.document is not None:
                assert by_message[case.document["message"]] == case.document, case.name

    def test_outage_loses_nothing(self, tmp_path):
        """Elasticsearch down while records are exported: they wait in the backlog and all arrive, once."""
        from tests.stack.es import ElasticsearchNode, client

        with ElasticsearchNode() as node, client(node) as admin:
            index = _index_name("outage")
            setup_index(admin, index)
            exporter = ElasticsearchLogExporter(
                node.url, user=node.user, password=node.password, index=index, deadline=0.5, environ={}
            )
            golden = [case for case in cases() if case.document is not None and case.min_severity == 17]
            node.stop()
            for case in golden:
                assert exporter.export([sdk_record(case.record)]) == ExportResult.FAILURE
            assert exporter.backlog == len(golden)
            node.restart()
            deadline = time.monotonic() + 60
            while not exporter.force_flush(timeout_millis=5000) and time.monotonic() < deadline:
                time.sleep(1)
            assert exporter.backlog == 0
            admin.indices.refresh(index=index)
            assert admin.count(index=index)["count"] == len(golden)
            exporter.shutdown()

    def test_retried_batch_creates_nothing_twice(self, es_node, es_client):
        """Exporting the same batch again succeeds (409 = already there) and adds no document."""
        index = _index_name("retry")
        exporter = ElasticsearchLogExporter(es_node.url, api_key=_writer_key(es_node, index), index=index, environ={})
        batch = [sdk_record(case.record) for case in cases()]
        assert exporter.export(batch) == ExportResult.SUCCESS
        assert exporter.export(batch) == ExportResult.SUCCESS
        es_client.indices.refresh(index=index)
        written = sum(1 for case in cases() if case.document is not None and case.min_severity == 17)
        assert es_client.count(index=index)["count"] == written
        exporter.shutdown()

    def test_rejections_reported_and_not_fed_back(self, es_node, es_client, caplog):
        """A mapping conflict is reported with its reason; the report does not loop back into the export."""
        index = _index_name("conflict")
        es_client.indices.create(index=index, mappings={"properties": {"level": {"type": "long"}}})
        exporter = ElasticsearchLogExporter(es_node.url, api_key=_writer_key(es_node, index), index=index, environ={})
        writes: list[int] = []
        original_write = exporter._write

        def counting_write(pending, rejected, retries):
            writes.append(len(pending))
            return original_write(pending, rejected, retries)

        exporter._write = counting_write  # type: ignore[method-assign]
        provider = LoggerProvider(resource=Resource({"service.name": "shop"}), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=50))
        handler = otel_logging_handler(provider)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with caplog.at_level(logging.INFO):
                logging.getLogger("tests.shop").error("order failed")
                for _ in range(4):
                    provider.force_flush()
                    time.sleep(0.1)
        finally:
            root.removeHandler(handler)
            provider.shutdown()
        assert writes == [1]
        reports = [r for r in caplog.records if r.name == "otel_openreplay.exporter"]
        assert reports
        assert "rejected document" in reports[0].getMessage()
        assert "HTTP 400" in reports[0].getMessage()
        assert "parsing_exception" in reports[0].getMessage()

    def test_refused_credentials_fail_the_batch(self, es_node, caplog):
        """A key Elasticsearch does not know: FAILURE, the HTTP status logged, the record kept to retry."""
        exporter = ElasticsearchLogExporter(
            es_node.url, api_key=ENCODED, index=_index_name("x"), deadline=0.0, environ={}
        )
        with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
            assert exporter.export([sdk_record(cases()[0].record)]) == ExportResult.FAILURE
        assert "HTTP 401" in caplog.text
        assert exporter.backlog == 1
        exporter.shutdown(timeout_millis=100)


@pytest.fixture(scope="module")
def busy_node():
    """A node whose write queue holds 2 requests: concurrent bulk writers get 429s."""
    with ElasticsearchNode(settings={"thread_pool.write.queue_size": 2, "thread_pool.write.size": 1}) as node:
        yield node


@pytest.mark.e2e
class TestBackPressure:
    """A burst of 429s is retried with backoff and nothing is lost."""

    def test_429_burst_loses_nothing(self, busy_node):
        """Sixteen exporters writing at once into a 2-slot write queue all land every document."""
        index = _index_name("burst")
        writers, per_writer = 16, 1500
        template = cases()[0].record
        results: list[object] = []

        def run(writer: int) -> None:
            exporter = ElasticsearchLogExporter(
                busy_node.url,
                user=busy_node.user,
                password=busy_node.password,
                index=index,
                initial_backoff=0.2,
                max_retries=8,
                environ={},
            )
            batch = [
                sdk_record({**template, "time_unix_nano": template["time_unix_nano"] + writer * 10_000 + i})
                for i in range(per_writer)
            ]
            results.append(exporter.export(batch))
            exporter.shutdown()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        with client(busy_node) as es:
            es.indices.refresh(index=index)
            count = es.count(index=index)["count"]
            stats = es.nodes.stats(metric="thread_pool")
        rejected = sum(node["thread_pool"]["write"]["rejected"] for node in stats["nodes"].values())
        assert results == [ExportResult.SUCCESS] * writers
        assert count == writers * per_writer
        assert rejected > 0, "the burst produced no 429: the test proved nothing"


# --- bulk errors as a real Elasticsearch answers them ---------------------------------------------------------

BULK_ERRORS = Path(__file__).parent / "fixtures" / "bulk_item_errors.json"
"""Failed bulk ``create`` items (and refused bulk requests) recorded from Elasticsearch 8.19.21 by
:func:`_provoke`; ``TestRecordedBulkErrors`` checks a live node still answers the same."""


def _bulk_one(es, index: str, document: dict | None = None, **options) -> dict:
    """One bulk ``create``: the item's ``status`` and ``error``, or the refused request's status and body."""
    operations = [{"create": {"_index": index, "_id": "doc-1"}}, document or {"message": "x", "level": "error"}]
    try:
        answer = es.bulk(operations=operations, **options)
    except ApiError as error:
        return {"request_status": error.status_code, "body": error.body}
    (item,) = answer["items"]
    info = next(iter(item.values()))
    return {"status": info["status"], "error": info.get("error")}


def _overloaded_item(node) -> dict | None:
    """Concurrent 500-document bulks into a 2-slot write queue until one item is refused with 429
    ``es_rejected_execution_exception`` (per item, not the whole request); None after 60 s."""
    found: list[dict] = []
    stop = threading.Event()
    operations = [{"index": {}}, {"message": "filler " * 20}] * 500

    def push() -> None:
        with client(node, max_retries=0) as es:
            while not stop.is_set():
                with contextlib.suppress(ApiError):
                    for item in es.bulk(index="pressure", operations=operations)["items"]:
                        info = item["index"]
                        if (info.get("error") or {}).get("type") == "es_rejected_execution_exception":
                            found.append({"status": info["status"], "error": info["error"]})
                            stop.set()
                            break

    threads = [threading.Thread(target=push, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    stop.wait(60)
    stop.set()
    for thread in threads:
        thread.join(60)
    return found[0] if found else None


def _provoke(node) -> dict[str, dict]:
    """Every failure of a bulk ``create`` the exporter must tell apart, provoked on ``node`` (a fresh one:
    cluster settings are changed, then restored)."""
    shapes: dict[str, dict] = {}
    document = {"message": "x", "level": "error"}
    with client(node) as admin:
        setup_index(admin, "blk")
        admin.index(index="blk", id="doc-1", document=document, refresh=True)
        shapes["already_there"] = _bulk_one(admin, "blk")
        for name, setting in [
            ("flood_stage_block", "index.blocks.read_only_allow_delete"),
            ("write_block", "index.blocks.write"),
            ("read_only_block", "index.blocks.read_only"),
        ]:
            admin.indices.put_settings(index="blk", settings={setting: True})
            shapes[name] = _bulk_one(admin, "blk")
            admin.indices.put_settings(index="blk", settings={setting: None})
        admin.indices.close(index="blk")
        shapes["closed_index"] = _bulk_one(admin, "blk")
        admin.indices.open(index="blk")
        for name, setting in [
            ("cluster_read_only_request", "cluster.blocks.read_only"),
            ("cluster_flood_stage_request", "cluster.blocks.read_only_allow_delete"),
        ]:
            admin.cluster.put_settings(persistent={setting: True})
            try:
                shapes[name] = _bulk_one(admin, "blk")
            finally:
                admin.cluster.put_settings(persistent={setting: None})
        admin.cluster.put_settings(persistent={"action.auto_create_index": "false"})
        try:
            shapes["missing_index_no_auto_create"] = _bulk_one(admin, "nowhere")
        finally:
            admin.cluster.put_settings(persistent={"action.auto_create_index": None})
        admin.indices.create(index="typed", mappings={"properties": {"level": {"type": "long"}}})
        shapes["mapping_conflict"] = _bulk_one(admin, "typed")
        admin.indices.create(index="logs-000001", aliases={"logs-alias": {"is_write_index": True}})
        admin.indices.put_settings(index="logs-alias", settings={"index.blocks.write": True})
        shapes["write_block_behind_alias"] = _bulk_one(admin, "logs-alias")
        admin.indices.put_settings(index="logs-alias", settings={"index.blocks.write": None})
        admin.indices.create(index="logs-000002")
        admin.indices.update_aliases(actions=[{"add": {"index": "logs-000002", "alias": "two-indices"}}])
        admin.indices.update_aliases(actions=[{"add": {"index": "logs-000001", "alias": "two-indices"}}])
        shapes["alias_without_write_index"] = _bulk_one(admin, "two-indices")
        admin.indices.create(
            index="unassigned",
            settings={"index.routing.allocation.require._name": "no-such-node", "number_of_replicas": 0},
            wait_for_active_shards=0,
        )
        shapes["unavailable_shards"] = _bulk_one(admin, "unassigned", timeout="1s")
        admin.security.put_role(name="create-only", indices=[{"names": ["new-*"], "privileges": ["create_doc"]}])
        admin.security.put_role(name="elsewhere", indices=[{"names": ["other"], "privileges": ["create_doc"]}])
        admin.security.put_user(username="create-only", password="create-only-pw", roles=["create-only"])
        admin.security.put_user(username="elsewhere", password="elsewhere-pw", roles=["elsewhere"])
    with client(node, basic_auth=("create-only", "create-only-pw")) as writer:
        shapes["missing_index_no_auto_configure"] = _bulk_one(writer, "new-logs")
    with client(node, basic_auth=("elsewhere", "elsewhere-pw")) as writer:
        shapes["no_privilege_on_index"] = _bulk_one(writer, "blk")
    overloaded = _overloaded_item(node)
    if overloaded is not None:
        shapes["overloaded"] = overloaded
    return shapes


def _recorded(name: str) -> dict:
    return json.loads(BULK_ERRORS.read_text())["shapes"][name]


ITEM_KINDS = {
    "flood_stage_block": "flood-stage",
    "write_block": "write-block",
    "write_block_behind_alias": "write-block",
    "read_only_block": "read-only",
    "closed_index": "closed",
    "missing_index_no_auto_create": "missing",
    "missing_index_no_auto_configure": "missing",
    "no_privilege_on_index": "privilege",
    "alias_without_write_index": "no-write-index",
    "unavailable_shards": "unavailable",
    "overloaded": "overload",
    "mapping_conflict": None,  # the only document error: a rejection
}
"""Each recorded item failure and what the exporter must make of it (a hold's kind, or None: rejected)."""

REQUEST_KINDS = {"cluster_read_only_request": "read-only", "cluster_flood_stage_request": "flood-stage"}
"""Each recorded refusal of a whole bulk request that is a block."""


def _classify(shape: dict, index: str = "logs") -> Hold | None:
    if "request_status" in shape:
        return classify_request(shape["request_status"], shape["body"], index)
    return classify_item(shape["status"], shape["error"], index)


class TestBulkErrorClassification:
    """Which bulk failures are a document's fault (rejected) and which the cluster's state (kept)."""

    @pytest.mark.parametrize(("name", "kind"), sorted({**ITEM_KINDS, **REQUEST_KINDS}.items()))
    def test_recorded_shapes(self, name, kind):
        """Each failure recorded from a real server is classified as the exporter must treat it."""
        hold = _classify(_recorded(name))
        assert (hold.kind if hold else None) == kind

    def test_every_recorded_failure_is_covered(self):
        """The table above names every recorded failure but the 409 (stored already: a success)."""
        assert set(json.loads(BULK_ERRORS.read_text())["shapes"]) == {*ITEM_KINDS, *REQUEST_KINDS, "already_there"}

    @pytest.mark.parametrize("name", sorted({**ITEM_KINDS, **REQUEST_KINDS}.keys() - {"mapping_conflict"}))
    def test_no_hold_advises_a_mapping_fix(self, name):
        """Whatever keeps documents out, the advice never points at the mapping."""
        hold = _classify(_recorded(name))
        assert hold is not None
        assert "mapping" not in f"{hold.cause} {hold.advice}"

    def test_flood_stage_advice(self):
        """The flood-stage block: free disk; Elasticsearch >= 7.4 lifts it itself below the high watermark."""
        hold = _classify(_recorded("flood_stage_block"))
        assert hold.cause == "index [logs] has a read-only-allow-delete block (the flood-stage disk watermark)"
        assert "free disk space" in hold.advice
        assert ">= 7.4 lifts the block itself" in hold.advice
        assert "high watermark" in hold.advice
        assert "HTTP 429 cluster_block_exception" in hold.detail

    def test_write_block_advice_names_the_configured_index_or_alias(self):
        """The write block: who set it, and the settings call on the index (or alias) the exporter writes."""
        hold = _classify(_recorded("write_block_behind_alias"), index="logs")
        assert 'PUT logs/_settings {"index.blocks.write": null}' in hold.advice
        assert "index [logs-000001] blocked by" in hold.detail  # Elasticsearch names the index behind the alias
        assert "who set it" in hold.advice

    def test_missing_index_advice(self):
        """A missing index the writer may not create (no auto_configure): create it, or grant auto_configure."""
        hold = _classify(_recorded("missing_index_no_auto_configure"))
        assert "does not exist and the writer may not create it" in hold.cause
        assert "otel-openreplay es setup --index logs" in hold.advice

    def test_cluster_wide_block_advice(self):
        """A cluster-wide block is lifted with the cluster settings API, not the index's."""
        hold = _classify(_recorded("cluster_flood_stage_request"))
        assert '"cluster.blocks.read_only_allow_delete": null' in hold.advice
        assert "cluster-wide" in hold.cause

    def test_a_security_refusal_of_the_whole_request_is_not_a_block(self):
        """A 403 for the whole request that is not a block (a key refused) stays an outage (None here)."""
        body = {"error": {"type": "security_exception", "reason": "action [indices:data/write/bulk] is unauthorized"}}
        assert classify_request(403, body, "logs") is None

    @pytest.mark.parametrize(
        ("status", "error", "kept"),
        [
            (500, "text, not a mapping", True),
            (502, None, True),
            (429, {}, True),
            (404, {"type": "something_new"}, True),
            (408, [1, 2], True),
            (400, None, False),
            (400, {"type": "mapper_parsing_exception", "reason": "failed to parse"}, False),
            (413, {"type": "something_new"}, False),
            (0, {"unexpected": "shape"}, False),
        ],
    )
    def test_unknown_shapes_by_status(self, status, error, kept):
        """Shapes not seen before never raise: classified by the status (4xx about the document: rejected)."""
        assert (classify_item(status, error, "logs") is not None) is kept


class _FakeBulk:
    """A loopback server answering ``_bulk`` like Elasticsearch: each item ``created``, or failed with
    ``shape`` (a recorded item failure) while it is set; or the whole request with ``request`` (a recorded
    refused request). Counts requests and items."""

    def __init__(self) -> None:
        self.shape: dict | None = None
        self.request: dict | None = None
        self.delay = 0.0  # seconds before each answer
        self.requests = 0
        self.items = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                lines = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode().splitlines()
                fake.requests += 1
                time.sleep(fake.delay)
                if fake.request is not None:
                    return self._answer(fake.request["request_status"], fake.request["body"])
                items = []
                for line in lines[::2]:
                    action = json.loads(line)["create"]
                    fake.items += 1
                    if fake.shape is None:
                        items.append({"create": {**action, "result": "created", "status": 201}})
                    else:
                        items.append({"create": {**action, **fake.shape}})
                self._answer(200, {"took": 1, "errors": fake.shape is not None, "items": items})

            do_PUT = do_POST

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_bulk() -> Iterator[_FakeBulk]:
    fake = _FakeBulk()
    yield fake
    fake.close()


def _records(count: int, start: int = 0) -> list:
    template = cases()[0].record
    return [sdk_record({**template, "time_unix_nano": template["time_unix_nano"] + start + n}) for n in range(count)]


def _own_logs(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_openreplay.exporter" and r.levelno == level]


class TestExporterDuringABlock:
    """A block (or any other state of the cluster) keeps documents like an outage; only documents' own
    errors are rejected. Against a loopback server answering with the failures recorded from a real one."""

    def _exporter(self, fake: _FakeBulk, **options) -> ElasticsearchLogExporter:
        defaults = {"deadline": 0.0, "max_retries": 0, "initial_backoff": 0.01, "max_backoff": 30.0}
        return ElasticsearchLogExporter(fake.url, environ={}, **{**defaults, **options})

    @pytest.mark.parametrize("name", ["flood_stage_block", "write_block"])
    def test_block_keeps_the_documents_warns_once_and_says_when_written_again(self, fake_bulk, caplog, name):
        """Blocked: FAILURE, every document kept, ONE warning naming the block, no error, no mapping advice;
        later exports while blocked add no warning; after the lift, everything kept is written and one
        line says so."""
        exporter = self._exporter(fake_bulk)
        fake_bulk.shape = _recorded(name)
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.exporter"):
            assert exporter.export(_records(3)) == ExportResult.FAILURE
            exporter._retry_at = 0.0  # the backoff over
            assert exporter.export(_records(2, start=100)) == ExportResult.FAILURE
            assert exporter.backlog == 5
            fake_bulk.shape = None  # lifted
            exporter._retry_at = 0.0
            assert exporter.export(_records(1, start=200)) == ExportResult.SUCCESS
        assert exporter.backlog == 0
        assert fake_bulk.items == 3 + 5 + 6
        (warning,) = _own_logs(caplog, logging.WARNING)
        assert ("read-only-allow-delete block" if name == "flood_stage_block" else "write block") in warning
        assert "3 records kept to retry until it is over" in warning
        assert "the documents themselves are fine" in warning
        assert "mapping" not in warning
        assert _own_logs(caplog, logging.ERROR) == []
        assert [m for m in _own_logs(caplog, logging.INFO) if "written again" in m] == [
            f"Elasticsearch at {fake_bulk.url}: written again, 5 records kept during the block "
            f"({_classify(_recorded(name)).cause})"
        ]
        exporter.shutdown()

    def test_the_helpers_retries_are_spent_once_per_episode(self, fake_bulk):
        """The first export meeting a 429 block lets the bulk helper retry (it cannot tell a block from
        back-pressure); later attempts in the same episode send one request each."""
        exporter = self._exporter(fake_bulk, max_retries=2)
        fake_bulk.shape = _recorded("flood_stage_block")
        exporter.export(_records(1))
        assert fake_bulk.requests == 3  # one + two retries
        exporter._retry_at = 0.0
        exporter.export(_records(1, start=10))
        assert fake_bulk.requests == 4
        exporter.shutdown(timeout_millis=0)

    def test_bulk_requests_stop_at_the_first_blocked_chunk(self, fake_bulk):
        """A backlog of many chunks meeting a block costs one request, not one per chunk."""
        exporter = self._exporter(fake_bulk, chunk_size=2)
        fake_bulk.shape = _recorded("write_block")
        assert exporter.export(_records(7)) == ExportResult.FAILURE
        assert (fake_bulk.requests, fake_bulk.items, exporter.backlog) == (1, 2, 7)
        exporter.shutdown(timeout_millis=0)

    def test_a_mapping_conflict_is_still_rejected(self, fake_bulk, caplog):
        """A document error is reported with the mapping advice and not kept."""
        exporter = self._exporter(fake_bulk)
        fake_bulk.shape = _recorded("mapping_conflict")
        with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
            assert exporter.export(_records(6)) == ExportResult.FAILURE
        assert exporter.backlog == 0
        errors = _own_logs(caplog, logging.ERROR)
        assert len(errors) == 6
        assert "document_parsing_exception" in errors[0]
        assert "check the mapping" in errors[-1]
        assert _own_logs(caplog, logging.WARNING) == []
        exporter.shutdown()

    def test_cluster_wide_block_refusing_the_request_is_kept_at_once(self, fake_bulk, caplog):
        """A whole request refused by a cluster-wide block: kept without waiting out the deadline, named."""
        exporter = self._exporter(fake_bulk, deadline=30.0)
        fake_bulk.request = _recorded("cluster_read_only_request")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
            assert exporter.export(_records(2)) == ExportResult.FAILURE
        assert time.monotonic() - started < 10  # not the 30 s deadline
        assert (fake_bulk.requests, exporter.backlog) == (1, 2)
        (warning,) = _own_logs(caplog, logging.WARNING)
        assert "the cluster is read-only" in warning
        assert '"cluster.blocks.read_only": null' in warning
        exporter.shutdown(timeout_millis=0)

    def test_the_backlog_is_retried_without_a_new_record(self, fake_bulk, caplog):
        """After the block lifts the backlog is written when the backoff ends, even if nothing is exported."""
        exporter = self._exporter(fake_bulk, max_backoff=0.2)
        fake_bulk.shape = _recorded("flood_stage_block")
        with caplog.at_level(logging.INFO, logger="otel_openreplay.exporter"):
            assert exporter.export(_records(4)) == ExportResult.FAILURE
            fake_bulk.shape = None
            deadline = time.monotonic() + 10
            while exporter.backlog and time.monotonic() < deadline:
                time.sleep(0.05)
        assert exporter.backlog == 0
        assert fake_bulk.items >= 8
        assert any("written again, 4 records kept" in m for m in _own_logs(caplog, logging.INFO))
        exporter.shutdown()

    def test_documents_in_flight_stay_in_the_backlog(self, fake_bulk):
        """While the retry timer is writing the backlog, the documents still count as waiting, and a
        flush (what shutdown does) waits for that write instead of seeing an empty backlog."""
        exporter = self._exporter(fake_bulk, max_backoff=0.1)
        fake_bulk.shape = _recorded("write_block")
        exporter.export(_records(3))
        fake_bulk.shape, fake_bulk.delay = None, 1.0
        requests = fake_bulk.requests
        deadline = time.monotonic() + 10
        while fake_bulk.requests == requests and time.monotonic() < deadline:
            time.sleep(0.01)  # the timer's write has reached the server and waits for its answer
        assert exporter.backlog == 3
        assert exporter.force_flush(timeout_millis=10_000) is True
        assert exporter.backlog == 0
        assert fake_bulk.items == 6
        exporter.shutdown()

    def test_backlog_bound_during_a_block(self, fake_bulk, caplog):
        """A block longer than the backlog holds: the oldest are dropped and counted, also when written again."""
        exporter = self._exporter(fake_bulk, backlog_size=2)
        fake_bulk.shape = _recorded("write_block")
        with caplog.at_level(logging.INFO, logger="otel_openreplay.exporter"):
            exporter.export(_records(3))
            assert exporter.backlog == 2
            fake_bulk.shape = None
            exporter._retry_at = 0.0
            assert exporter.export([]) == ExportResult.SUCCESS
        assert "backlog full (2 documents): 1 oldest records lost" in caplog.text
        assert "written again, 3 records kept during the block (index [logs] has a write block" in caplog.text
        assert "(1 of them dropped: backlog full)" in caplog.text
        exporter.shutdown()

    def test_shutdown_during_a_block_names_it(self, fake_bulk, caplog):
        """Still blocked at shutdown: the records lost are counted with the block named."""
        exporter = self._exporter(fake_bulk)
        fake_bulk.shape = _recorded("write_block")
        exporter.export(_records(2))
        with caplog.at_level(logging.ERROR, logger="otel_openreplay.exporter"):
            exporter.shutdown(timeout_millis=100)
        assert "still not writable at shutdown, the block (index [logs] has a write block" in caplog.text
        assert "2 records lost" in caplog.text


@pytest.mark.e2e
class TestRecordedBulkErrors:
    """The recorded failures are what a live Elasticsearch answers (status, type, and so classification)."""

    def test_fixture_matches_a_live_server(self, busy_node):
        """Every failure provoked again on a live node has the recorded status, type and classification."""
        live = _provoke(busy_node)
        recorded = json.loads(BULK_ERRORS.read_text())["shapes"]
        assert live.keys() == recorded.keys(), json.dumps(live, indent=1)
        for name, shape in recorded.items():
            now = live[name]
            if "request_status" in shape:
                assert (now["request_status"], now["body"]["error"]["type"]) == (
                    shape["request_status"],
                    shape["body"]["error"]["type"],
                ), name
            else:
                assert (now["status"], now["error"]["type"]) == (shape["status"], shape["error"]["type"]), name
            assert _classify(now) == _classify(shape) or _classify(now).kind == _classify(shape).kind, name


@pytest.mark.e2e
@pytest.mark.slow
class TestBlocksOnEveryServer:
    """On every supported server (8.19.21, 8.0.0, 7.17.29) both index blocks keep the records, not reject them."""

    @pytest.mark.parametrize(
        ("setting", "named"),
        [
            ("index.blocks.read_only_allow_delete", "read-only-allow-delete block"),
            ("index.blocks.write", "write block"),
        ],
        ids=["flood-stage", "write"],
    )
    def test_block_kept_then_written(self, es_server, setting, named, caplog):
        """Blocked: FAILURE, the record kept, a warning naming the block, no rejection; lifted: written once."""
        index = _index_name("blocked")
        with client(es_server) as admin:
            setup_index(admin, index)
            admin.indices.put_settings(index=index, settings={setting: True})
            exporter = ElasticsearchLogExporter(
                es_server.url,
                user=es_server.user,
                password=es_server.password,
                index=index,
                # No 429 retries by the helper: 8.x lifts a read_only_allow_delete block by itself at its
                # next disk check when the disk has room (every 30 s), so the first answer must be the test's.
                max_retries=0,
                environ={},
            )
            with caplog.at_level(logging.WARNING, logger="otel_openreplay.exporter"):
                assert exporter.export(_records(2)) == ExportResult.FAILURE
                assert exporter.backlog == 2
                admin.indices.put_settings(index=index, settings={setting: None})
                assert exporter.force_flush() is True
            admin.indices.refresh(index=index)
            assert admin.count(index=index)["count"] == 2
        (warning,) = _own_logs(caplog, logging.WARNING)
        assert named in warning, warning
        assert _own_logs(caplog, logging.ERROR) == []
        exporter.shutdown()
