"""The collector path (collector/): manifest, drop-in config, and the documents it writes.

Pure checks need nothing; the others (``e2e``) run the real ``otelcol-openreplay`` built by
``collector/build.sh`` (minutes on a cold cache, then cached):

- ``validate`` accepts the shipped config and fails loudly on a broken copy;
- the OTTL output, read from the debug exporter, equals ``otel_openreplay.layout`` field by field, and
  every golden record (``tests/fixtures/documents``), sent as OTLP/JSON, becomes its golden document;
- against a real Elasticsearch (``es_node``): records sent from the Python SDK over OTLP gRPC and HTTP
  are read back by a user with nothing but ``read`` on ``logs``; basic auth and API key; latency;
  SIGKILL of the collector while records wait for a stopped Elasticsearch loses and duplicates nothing.

It must never stop, kill or reconfigure the shared ``es_node`` (the SIGKILL test starts its own node), nor
rely on other tests' documents: each test writes under its own ``service.name`` and reads only that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from elasticsearch import Elasticsearch
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_openreplay import layout
from otel_openreplay.generations import ui_level
from otel_openreplay.replay import session_start_ms
from tests.conftest import TOKEN, otel_logging_handler
from tests.conftest import TOKEN_SESSION_ID as TOKEN_ID
from tests.fixtures.documents.golden import Case, cases, otlp_json
from tests.flakeid import flake_id
from tests.stack import collector as stack
from tests.stack import es
from tests.stack.fixtures import INDEX, WRITER_ROLE, Accounts
from tests.stack.ingest import base36, compose_session_id

PREFIX = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_ID}] "
HOSTILE_TOKEN = "abc] [openReplaySessionToken=evil"
PLAIN_KEYS = {"@timestamp", "utc_time", "message", "tags", "level", "service", "log"}
"""The fields of an error document with no session."""

DUMMY_ES_URL = "http://127.0.0.1:9"  # for configs whose exporter is never used (debug overlay, validate)


# --- helpers ---------------------------------------------------------------------------------------


class Sender:
    """The Python SDK sending to a collector over OTLP, keeping an in-memory copy of every record.

    ``batch`` uses the SDK's BatchLogRecordProcessor with its default schedule (as services run it);
    otherwise each record is exported synchronously. The copy feeds ``layout.to_document``.
    """

    def __init__(
        self, collector: stack.Collector, *, protocol: str = "grpc", batch: bool = False, service: str = ""
    ) -> None:
        self.service = service or f"svc-{secrets.token_hex(4)}"
        self.memory = InMemoryLogRecordExporter()
        self.exporter = (
            GrpcLogExporter(endpoint=collector.grpc_endpoint, insecure=True)
            if protocol == "grpc"
            else HttpLogExporter(endpoint=collector.http_logs_url)
        )
        self.provider = LoggerProvider(resource=Resource.create({"service.name": self.service}), shutdown_on_exit=False)
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.memory))
        processor = BatchLogRecordProcessor if batch else SimpleLogRecordProcessor
        self.provider.add_log_record_processor(processor(self.exporter))
        self.logger = self.provider.get_logger("tests.collector")

    def emit(
        self,
        body: Any,
        *,
        severity: SeverityNumber = SeverityNumber.ERROR,
        severity_text: str | None = "ERROR",
        attributes: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.logger.emit(
            severity_number=severity,
            severity_text=severity_text,
            body=body,
            attributes=dict(attributes or {}),
            **kwargs,
        )

    def log_exception(self, message: str, *, logger_name: str = "tests.collector.std") -> None:
        """Log a real exception through the logging bridge (exception.* attributes as services send them)."""
        handler = otel_logging_handler(self.provider, logging.ERROR)
        std = logging.getLogger(logger_name)
        std.propagate = False
        std.addHandler(handler)
        try:
            try:
                {}["missing"]  # a real KeyError with a real traceback
            except KeyError:
                std.exception(message)
        finally:
            std.removeHandler(handler)

    def expected(self) -> dict[str | None, dict[str, Any]]:
        """Python's documents (``layout.to_document``) of every record kept, keyed by message."""
        documents = (layout.to_document(record) for record in self.memory.get_finished_logs())
        return {doc.get("message"): doc for doc in documents if doc is not None}

    def flush(self) -> None:
        self.provider.force_flush()

    def close(self) -> None:
        self.provider.shutdown()


@contextlib.contextmanager
def sending(collector: stack.Collector, **options: Any) -> Iterator[Sender]:
    sender = Sender(collector, **options)
    try:
        yield sender
    finally:
        sender.close()


def by_message(documents: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    keyed = {doc.get("message"): layout.expand_dotted(doc) for doc in documents}
    assert len(keyed) == len(documents), "two documents share a message"
    return keyed


def all_debug_documents(collector: stack.Collector) -> list[dict[str, Any]]:
    """Every document the debug exporter printed: lines ``Body: Map({...json...})``."""
    found = []
    for line in collector.log_text().splitlines():
        text = line.strip()
        if text.startswith("Body: Map(") and text.endswith(")"):
            found.append(json.loads(text[len("Body: Map(") : -1]))
    return found


def debug_documents(collector: stack.Collector, service: str) -> list[dict[str, Any]]:
    """The documents of ``service`` the debug exporter printed."""
    return [doc for doc in all_debug_documents(collector) if doc.get("service", {}).get("name") == service]


def post_otlp_json(collector: stack.Collector, records: list[dict[str, Any]]) -> None:
    """Send ``records`` (golden-record form) as one OTLP/JSON request, as a service in any language may."""
    response = requests.post(collector.http_logs_url, json=otlp_json(records), timeout=30)
    assert response.status_code == 200, response.text


def wait_for_debug(collector: stack.Collector, service: str, count: int) -> list[dict[str, Any]]:
    """``service``'s documents on the debug exporter once ``count`` are there, read again 0.5 s later."""
    wait_for(f"{count} documents on the debug exporter", lambda: len(debug_documents(collector, service)) >= count)
    time.sleep(0.5)  # anything more (a record below error, a duplicate) would have arrived by now too
    return debug_documents(collector, service)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Call ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def search_service(reader: Elasticsearch, service: str, size: int = 200) -> list[dict[str, Any]]:
    """Every hit (``_id`` + ``_source``) of one test's service in ``logs``, read as the reader."""
    response = reader.search(
        index=INDEX, query={"match_phrase": {"service.name": service}}, size=size, sort=["utc_time:asc"]
    )
    return response["hits"]["hits"]


def wait_for_hits(
    reader: Elasticsearch, service: str, count: int, timeout: float = 30.0, *, settle: float = 0.0
) -> list[dict]:
    """``service``'s hits once ``count`` are there; with ``settle``, read again that many seconds later."""
    hits = wait_for(
        f"{count} documents of {service}",
        lambda: (hits := search_service(reader, service)) and len(hits) >= count and hits,
        timeout,
    )
    if not settle:
        return hits
    time.sleep(settle)  # let anything that should not be there arrive, then look again
    return search_service(reader, service)


def validate_env(tmp_path: Path, url: str = "https://es.example:9200") -> dict[str, str]:
    """The variables the shipped config requires, for runs whose exporter never connects."""
    return {"OPENREPLAY_ES_URL": url, "OPENREPLAY_QUEUE_DIR": str(tmp_path / "q")}


def edited_config(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the shipped config with ``old`` (which must be in it) replaced by ``new``."""
    text = stack.CONFIG.read_text()
    assert old in text, old
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace(old, new))
    return edited


# --- pure checks -----------------------------------------------------------------------------------


EXPECTED_MODULES = {
    "go.opentelemetry.io/collector/receiver/otlpreceiver",
    "go.opentelemetry.io/collector/processor/memorylimiterprocessor",
    "github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor",
    "github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor",
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/elasticsearchexporter",
    "go.opentelemetry.io/collector/exporter/debugexporter",
    "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage",
    "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension",
}


def test_manifest_pins_exactly_the_components_at_one_release() -> None:
    """The manifest builds exactly the nine components, every one at v0.156.0."""
    modules = re.findall(r"^\s*- gomod: (\S+) (\S+)\s*$", stack.MANIFEST.read_text(), flags=re.MULTILINE)
    assert {name for name, _ in modules} == EXPECTED_MODULES
    assert len(modules) == len(EXPECTED_MODULES)
    assert {version for _, version in modules} == {"v0.156.0"}


def test_unset_references_names_a_typo(tmp_path: Path) -> None:
    """A misspelt required variable is named (the collector itself only complains about the field)."""
    broken = edited_config(tmp_path, "${env:OPENREPLAY_ES_URL}", "${env:OPENREPLAY_ES_URLL}")
    assert stack.unset_references(stack.CONFIG, {"OPENREPLAY_ES_URL": "http://x"}) == []
    assert stack.unset_references(broken, {"OPENREPLAY_ES_URL": "http://x"}) == ["OPENREPLAY_ES_URLL"]


def test_config_has_no_secrets() -> None:
    """Credentials come only from the environment: no literal key, password or user in the file."""
    text = stack.CONFIG.read_text()
    for key in ("api_key", "user", "password", "endpoint"):
        for value in re.findall(rf"^\s*{key}:\s*(\S.*)$", text, flags=re.MULTILINE):
            assert value.startswith("${env:"), f"{key}: {value}"


# --- validate --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def binary(collector_binary: Path) -> Path:
    return collector_binary


@pytest.mark.e2e
def test_binary_has_exactly_the_manifest_components(binary: Path) -> None:
    """`otelcol-openreplay components` lists what the manifest asks for, nothing else."""
    listing = subprocess.run([binary, "components"], capture_output=True, text=True, check=True).stdout
    modules = set(re.findall(r"module: (\S+) v0\.156\.0", listing))
    assert modules == EXPECTED_MODULES


@pytest.mark.e2e
def test_validate_accepts_the_shipped_config(binary: Path, tmp_path: Path) -> None:
    """`validate` passes the shipped config as it is."""
    result = stack.validate(stack.CONFIG, validate_env(tmp_path), binary=binary)
    assert result.returncode == 0, result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # A typo in the URL variable's name leaves the endpoint empty: the error says which field.
        pytest.param(
            "${env:OPENREPLAY_ES_URL}",
            "${env:OPENREPLAY_ES_URLL}",
            ["exporters::elasticsearch/openreplay", "endpoint"],
            id="misspelt-variable",
        ),
        # validate compiles every OTTL statement: a misspelt function is named.
        pytest.param("Nanosecond(log.time)", "Nanosecnd(log.time)", ["Nanosecnd"], id="misspelt-ottl-function"),
    ],
)
def test_validate_fails_loudly_on_a_broken_copy(
    binary: Path, tmp_path: Path, old: str, new: str, named: list[str]
) -> None:
    """A broken copy of the config fails `validate`, whose error names what is wrong."""
    result = stack.validate(edited_config(tmp_path, old, new), validate_env(tmp_path), binary=binary)
    assert result.returncode != 0
    for name in named:
        assert name in result.stderr, name


MERGE_GATE = "--feature-gates=confmap.enableMergeAppendOption"
EXISTING = stack.REPO / "tests" / "fixtures" / "collector" / "existing-config.yaml"


@pytest.mark.e2e
def test_merges_into_an_existing_config_as_the_readme_says(binary: Path, tmp_path: Path) -> None:
    """The README's recipe: our file, then the team's own, lists appended: both pipelines, all extensions."""
    env = validate_env(tmp_path)
    configs = ["--config", str(stack.CONFIG), "--config", str(EXISTING), MERGE_GATE]
    checked = subprocess.run([binary, "validate", *configs], env=env, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    printed = subprocess.run([binary, "print-config", *configs], env=env, capture_output=True, text=True, check=True)
    service = printed.stdout[printed.stdout.index("\nservice:") :]
    for name in ("logs:", "logs/openreplay:", "traces:", "- health_check", "- file_storage/openreplay"):
        assert name in service, name
    assert "- elasticsearch/openreplay" in service


@pytest.mark.e2e
def test_merging_without_the_append_gate_fails_at_start(binary: Path, tmp_path: Path) -> None:
    """Without the gate the team's `extensions` list replaces ours: `validate` passes, but start-up fails loudly."""
    grpc, http, health = stack.free_ports(3)
    existing = tmp_path / "existing.yaml"
    existing.write_text(
        EXISTING.read_text()
        .replace("localhost:4317", f"localhost:{grpc}")
        .replace("localhost:4318", f"localhost:{http}")
        .replace("localhost:13133", f"localhost:{health}")
    )
    env = validate_env(tmp_path, DUMMY_ES_URL)
    assert stack.validate([stack.CONFIG, existing], env, binary=binary).returncode == 0
    started = subprocess.run(
        [binary, "--config", str(stack.CONFIG), "--config", str(existing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "no storage client extension found" in started.stderr


# --- the OTTL output, on the debug exporter --------------------------------------------------------


@pytest.fixture(scope="module")
def debug_collector(binary: Path) -> Iterator[stack.Collector]:
    config = [stack.CONFIG, stack.DEBUG_OVERLAY]
    with stack.Collector(config, {"OPENREPLAY_ES_URL": DUMMY_ES_URL}, binary=binary) as running:
        yield running


def _send_layout_cases(sender: Sender) -> int:
    """Emit one record per rule of the contract; returns how many should become documents."""
    span = NonRecordingSpan(SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False, TraceFlags(1)))
    cases: list[tuple[Any, dict[str, Any]]] = [
        ("session: token and id", {"openReplaySessionToken": TOKEN, "openReplaySession.id": "42"}),
        ("session: token only", {"openReplaySessionToken": TOKEN}),
        ("session: id only", {"openReplaySession.id": "7"}),
        ("session: id as an int", {"openReplaySession.id": 42}),
        (f"{PREFIX}already prefixed by the Python SDK", {"openReplaySessionToken": TOKEN}),
        (f"[openReplaySession.id={TOKEN_ID}] only the id part", {"openReplaySessionToken": TOKEN}),
        ("session: upper-case token", {"openReplaySessionToken": TOKEN.upper()}),
        ("session: token whose first segment is not base36", {"openReplaySessionToken": "-5.abc"}),
        ("hostile", {"openReplaySessionToken": HOSTILE_TOKEN, "openReplaySession.id": "12] [x"}),
        ("hostile id only", {"openReplaySession.id": "1 2"}),
        (
            "exception without a traceback",
            {"exception.type": "ValueError", "exception.message": "bad amount"},
        ),
        ("exception type only", {"exception.type": "TimeoutError"}),
        (
            "handled\nTraceback (most recent call last):\nKeyError: 'x'",
            {
                "exception.type": "KeyError",
                "exception.stacktrace": "Traceback (most recent call last):\nKeyError: 'x'\n",
            },
        ),
        ({"b": 1, "a": "x"}, {}),
        (True, {}),
        (42, {}),
        (None, {}),
    ]
    for body, attributes in cases:
        sender.emit(body, attributes=attributes)
    sender.emit("with trace context", context=trace.set_span_in_context(span))
    sender.emit("fatal", severity=SeverityNumber.FATAL, severity_text="CRITICAL")
    sender.emit("no severity text", severity_text=None)
    sender.emit("time on the second", timestamp=1_764_166_054_000_000_000)
    sender.emit("time with half a second", timestamp=1_764_166_054_500_999_999)
    sender.log_exception("payment failed")
    for level in (SeverityNumber.INFO, SeverityNumber.WARN, SeverityNumber.DEBUG):
        sender.emit(f"below error: {level.name}", severity=level, severity_text=level.name)
    sender.emit("no severity at all", severity=SeverityNumber.UNSPECIFIED, severity_text=None)
    return len(cases) + 6


@pytest.mark.e2e
def test_ottl_documents_equal_the_python_layout(debug_collector: stack.Collector) -> None:
    """Both paths write the same document for every rule: message, prefix, session, time, level, error.*…"""
    with sending(debug_collector, service=f"layout-{secrets.token_hex(3)}") as sender:
        count = _send_layout_cases(sender)
        expected = sender.expected()
        service = sender.service
    got = by_message(wait_for_debug(debug_collector, service, count))
    assert len(expected) == count
    assert set(got) == set(expected)
    for message, document in expected.items():
        assert got[message] == document, message


@pytest.mark.e2e
def test_ottl_rules_by_example(debug_collector: stack.Collector) -> None:
    """The rules spelled out (independently of layout.py): what the collector writes for typical records."""
    with sending(debug_collector) as sender:
        sender.emit("plain", attributes={"openReplaySessionToken": TOKEN})
        sender.emit(f"{PREFIX}prefixed", attributes={"openReplaySessionToken": TOKEN})
        sender.emit("hostile", attributes={"openReplaySessionToken": HOSTILE_TOKEN})
        sender.emit("at", timestamp=1_764_166_054_000_000_000)
        service = sender.service
    docs = by_message(wait_for_debug(debug_collector, service, 4))
    assert len(docs) == 4
    plain = docs[f"{PREFIX}plain"]
    assert plain["openReplaySessionToken"] == TOKEN
    assert plain["openReplaySession"] == {"id": TOKEN_ID}
    assert plain["tags"] == ["error"]
    assert plain["level"] == "error"
    assert plain["log"] == {"logger": "tests.collector", "level": "ERROR"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", plain["@timestamp"])
    assert plain["utc_time"] == plain["@timestamp"]
    assert f"{PREFIX}prefixed" in docs
    assert docs["hostile"].keys() == PLAIN_KEYS
    assert docs["at"]["@timestamp"] == "2025-11-26T14:07:34.000Z"


@pytest.mark.e2e
def test_known_difference_session_id_beyond_int64(debug_collector: stack.Collector) -> None:
    """Documented difference: a token whose first segment exceeds int64 gets no derived id in OTTL.

    Python derives it (up to 20 digits); no real OpenReplay session id is that large (they are int64).
    """
    token = "2zzzzzzzzzzzz.0.1.x"  # base36 of a number between 2^63 and 10^20
    with sending(debug_collector) as sender:
        sender.emit("overflow", attributes={"openReplaySessionToken": token})
        service = sender.service
        (python_doc,) = sender.expected().values()
    (doc,) = wait_for_debug(debug_collector, service, 1)
    assert python_doc["openReplaySession"]["id"] == str(int("2zzzzzzzzzzzz", 36))
    assert "openReplaySession" not in doc
    assert doc["message"] == f"[openReplaySessionToken={token}] overflow"


GOLDEN_BY_WRITER: dict[str, list[Case]] = {}
for _case in cases():
    GOLDEN_BY_WRITER.setdefault(json.dumps(_case.writer, sort_keys=True), []).append(_case)


@pytest.mark.e2e
@pytest.mark.parametrize("writer", sorted(GOLDEN_BY_WRITER), ids=lambda writer: writer.strip("{}") or "defaults")
def test_golden_records_become_the_golden_documents(binary: Path, writer: str) -> None:
    """Each golden record, sent as OTLP/JSON by a non-Python sender (exactly its severity, no SDK in
    between), becomes its golden document, with the case's writer settings; a record golden leaves
    unwritten gives nothing."""
    group = GOLDEN_BY_WRITER[writer]
    expected = [case.document for case in group if case.document is not None]
    env = {"OPENREPLAY_ES_URL": DUMMY_ES_URL, **group[0].writer_env}
    with stack.Collector([stack.CONFIG, stack.DEBUG_OVERLAY], env, binary=binary) as collector:
        post_otlp_json(collector, [case.record for case in group])
        wait_for(f"{len(expected)} documents", lambda: len(all_debug_documents(collector)) >= len(expected))
        time.sleep(0.5)  # a document that should not be there would have arrived by now too
        got = [layout.expand_dotted(doc) for doc in all_debug_documents(collector)]
    assert sorted(got, key=_canonical) == sorted(expected, key=_canonical)


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True)


ODD_SEVERITIES: list[tuple[int, str | None]] = [
    (0, "ERROR"),  # text only
    (1, None),
    (5, "debug"),
    (9, "Info"),
    (13, "WARN"),
    (16, "WARNING4"),
    (17, None),
    (17, "error"),
    (17, "info"),
    (20, "CRITICAL"),
    (21, "FATAL"),
    (24, "FATAL4"),
    (25, "FATAL5"),  # beyond OTel's range: OTLP carries it, no Python SDK can send it
    (255, None),
]


@pytest.mark.e2e
def test_every_document_has_a_level_the_panel_reads(binary: Path) -> None:
    """With every severity kept (OPENREPLAY_MIN_SEVERITY_NUMBER=1), whatever number and text a sender set, each
    document the collector writes has the lowercase `level` of layout.py for that number, which OpenReplay
    ≥ 1.21's panel shows as that very status; a record without a number (0) is written by neither path."""
    records = [
        {"time_unix_nano": 1_795_702_054_120_000_000, "severity_number": number, "body": f"severity {number} {text}"}
        | ({"severity_text": text} if text is not None else {})
        for number, text in ODD_SEVERITIES
    ]
    env = {"OPENREPLAY_ES_URL": DUMMY_ES_URL, "OPENREPLAY_MIN_SEVERITY_NUMBER": "1"}
    with stack.Collector([stack.CONFIG, stack.DEBUG_OVERLAY], env, binary=binary) as collector:
        post_otlp_json(collector, records)
        count = len(ODD_SEVERITIES) - 1
        wait_for(f"{count} documents", lambda: len(all_debug_documents(collector)) >= count)
        time.sleep(0.5)
        got = {doc["message"]: doc for doc in all_debug_documents(collector)}
    assert set(got) == {record["body"] for record in records if record["severity_number"] >= 1}
    for (number, text), record in zip(ODD_SEVERITIES, records, strict=True):
        if number < 1:
            continue
        document = got[record["body"]]
        assert document["level"] == layout.level_for(number), record["body"]
        assert ui_level(document["level"]) == document["level"]
        assert document["tags"] == [document["level"]]
        assert document.get("log", {}).get("level") == text


# --- against a real Elasticsearch ------------------------------------------------------------------


@pytest.fixture(scope="module")
def es_collector(binary: Path, accounts: Accounts) -> Iterator[stack.Collector]:
    """The shipped config, basic auth as the writer (OPENREPLAY_ES_API_KEY unset: its empty default)."""
    with stack.Collector(stack.CONFIG, accounts.basic_env(), binary=binary) as running:
        yield running


@pytest.mark.e2e
def test_documents_in_elasticsearch_follow_the_contract(es_collector: stack.Collector, reader: Elasticsearch) -> None:
    """Read as OpenReplay (read on `logs` only): prefixes, no double prefix, no forged prefix, no info/warning,
    exceptions in message and error.*, every field of the contract equal to layout.py's, empty ones absent."""
    with sending(es_collector) as sender:
        sender.emit("checkout failed", attributes={"openReplaySessionToken": TOKEN, "openReplaySession.id": TOKEN_ID})
        sender.emit(f"{PREFIX}already prefixed", attributes={"openReplaySessionToken": TOKEN})
        sender.emit("no session here")
        sender.emit("just info", severity=SeverityNumber.INFO, severity_text="INFO")
        sender.emit("just a warning", severity=SeverityNumber.WARN, severity_text="WARNING")
        sender.emit("hostile attribute", attributes={"openReplaySessionToken": HOSTILE_TOKEN})
        sender.log_exception("payment failed")
        expected = sender.expected()
        service = sender.service
    hits = wait_for_hits(reader, service, 5, settle=1.5)
    docs = by_message([hit["_source"] for hit in hits])
    assert len(hits) == 5
    assert set(docs) == set(expected)
    for message, document in expected.items():
        assert docs[message] == document, message

    session = docs[f"{PREFIX}checkout failed"]
    assert session["openReplaySessionToken"] == TOKEN
    assert session["openReplaySession"] == {"id": TOKEN_ID}
    assert f"{PREFIX}already prefixed" in docs  # once, not twice
    plain = docs["no session here"]
    assert set(plain) == PLAIN_KEYS
    assert all(doc["level"] == "error" and doc["tags"] == ["error"] for doc in docs.values())
    assert not any("just info" in m or "just a warning" in m for m in docs)
    hostile = docs["hostile attribute"]
    assert "openReplaySessionToken" not in hostile
    assert "evil" not in json.dumps(hostile)
    (exception,) = (doc for message, doc in docs.items() if message.startswith("payment failed\n"))
    assert exception["error"]["type"] == "KeyError"
    assert exception["error"]["message"] == "missing"
    assert exception["message"].endswith("KeyError: 'missing'")
    assert "Traceback (most recent call last):" in exception["message"]
    assert exception["error"]["stack_trace"].rstrip("\n") in exception["message"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", hit["_id"]) for hit in hits)  # ids from the record

    # OpenReplay's own queries, as the reader.
    modern = reader.search(index=INDEX, query={"match_phrase": {"message": f"openReplaySession.id={TOKEN_ID}"}})
    assert f"{PREFIX}checkout failed" in {hit["_source"]["message"] for hit in modern["hits"]["hits"]}
    legacy = reader.search(
        index=INDEX,
        query={
            "bool": {
                "filter": [
                    {"match": {"message": {"query": "openReplaySessionToken="}}},
                    {"range": {"utc_time": {"gte": "now-1h", "lte": "now"}}},
                    {"term": {"tags": "error"}},
                    {"match_phrase": {"service.name": service}},
                ]
            }
        },
        size=100,
    )
    assert {hit["_source"]["message"] for hit in legacy["hits"]["hits"]} == {
        f"{PREFIX}checkout failed",
        f"{PREFIX}already prefixed",
    }


@pytest.mark.e2e
def test_a_replayed_batch_creates_no_duplicates(es_collector: stack.Collector, reader: Elasticsearch) -> None:
    """The same records exported twice (an SDK retry, a queue replay) are stored once: fixed document ids."""
    with sending(es_collector) as sender:
        for n in range(3):
            sender.emit(f"replayed {n}")
        service = sender.service
        records = sender.memory.get_finished_logs()
        again = GrpcLogExporter(endpoint=es_collector.grpc_endpoint, insecure=True)
        again.export(records)
        again.export(records)
        again.shutdown()
    hits = wait_for_hits(reader, service, 3, settle=1.5)
    assert sorted(hit["_source"]["message"] for hit in hits) == [
        "replayed 0",
        "replayed 1",
        "replayed 2",
    ]


@pytest.mark.e2e
def test_api_key_auth_over_otlp_http(binary: Path, accounts: Accounts, reader: Elasticsearch) -> None:
    """An encoded API key alone (user and password unset, their empty defaults) writes over OTLP/HTTP."""
    key = es.create_api_key(accounts.node, f"otelor-collector-{secrets.token_hex(3)}", {"writer": WRITER_ROLE})
    env = {"OPENREPLAY_ES_URL": accounts.node.url, "OPENREPLAY_ES_API_KEY": key.encoded}
    with stack.Collector(stack.CONFIG, env, binary=binary) as running, sending(running, protocol="http") as sender:
        sender.emit("sent over http", attributes={"openReplaySession.id": "123"})
        service = sender.service
    (hit,) = wait_for_hits(reader, service, 1)
    assert hit["_source"]["message"] == "[openReplaySession.id=123] sent over http"
    assert hit["_source"]["openReplaySession"] == {"id": "123"}


@pytest.mark.e2e
def test_latency_from_log_to_searchable(
    es_collector: stack.Collector, reader: Elasticsearch, record_property: Callable[[str, object], None]
) -> None:
    """A record logged through the SDK's batch processor (default 1 s schedule) is searchable within ~2 s."""
    latencies = []
    with sending(es_collector, batch=True) as sender:
        for n in range(5):
            marker = f"latency probe {n} {secrets.token_hex(4)}"
            started = time.monotonic()
            sender.emit(marker)
            wait_for(
                marker,
                lambda m=marker: reader.search(index=INDEX, query={"match_phrase": {"message": m}})["hits"]["hits"],
                timeout=15,
                interval=0.02,
            )
            latencies.append(time.monotonic() - started)
            time.sleep(0.3)
    record_property("latency_seconds", [round(x, 3) for x in latencies])
    print(f"\nlog -> searchable: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
    assert max(latencies) < 3.5, latencies


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkill_while_queued_loses_and_duplicates_nothing(binary: Path) -> None:
    """Elasticsearch down, records sent, collector SIGKILLed; ES back, collector back: each record once."""
    count = 40
    with es.ElasticsearchNode() as node:
        accounts = Accounts(node)
        collector = stack.Collector(stack.CONFIG, accounts.basic_env(), binary=binary)
        try:
            collector.start()
            collector.wait_ready()
            with sending(collector, batch=True) as sender:
                sender.emit("before the outage")
                sender.flush()
                with contextlib.closing(accounts.reader_client()) as reader:
                    wait_for_hits(reader, sender.service, 1)
                node.stop()
                for n in range(count):
                    sender.emit(f"queued {n:02d}")
                sender.flush()  # returns once the collector has accepted them (persisted in its queue)
                time.sleep(2)  # the exporter is now retrying against the stopped node
                service = sender.service
            # Nothing can have been delivered: Elasticsearch is down. Kill -9 while the batch is in flight.
            collector.kill()
            node.start()
            node.wait_ready()
            collector.start()
            collector.wait_ready()
            with contextlib.closing(accounts.reader_client()) as reader:
                hits = wait_for_hits(reader, service, count + 1, timeout=60, settle=3)  # any duplicate by then
                messages = [hit["_source"]["message"] for hit in hits]
        finally:
            collector.remove()
    assert sorted(messages) == ["before the outage"] + [f"queued {n:02d}" for n in range(count)]


# --- the replay link (openReplaySession.url) -------------------------------------------------------

REPLAY_BASE = "https://openreplay.example.com/3"


def send_cases(
    collector: stack.Collector, reader: Elasticsearch, cases: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, int]]:
    """One record per case, its name as the message: the hits, the documents by case, when each was sent (ms)."""
    sent_ms = {}
    with sending(collector) as sender:
        for message, attributes in cases.items():
            sent_ms[message] = int(time.time() * 1000)
            sender.emit(message, attributes=attributes)
        service = sender.service
    hits = wait_for_hits(reader, service, len(cases))
    docs = {hit["_source"]["message"].rpartition("] ")[2]: layout.expand_dotted(hit["_source"]) for hit in hits}
    assert set(docs) == set(cases)
    return hits, docs, sent_ms


def _epoch_ms(rfc3339: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def _jumpto(url: str) -> int:
    match = re.fullmatch(r".+\?jumpto=([0-9]+)", url)
    assert match, url
    return int(match.group(1))


@pytest.mark.e2e
def test_replay_link_with_the_variable_set(binary: Path, accounts: Accounts, reader: Elasticsearch) -> None:
    """OTEL_OPENREPLAY_REPLAY_URL set: every document with a session links to its replay, at the record's
    moment (jumpto = the record's time minus the start encoded in the flake id) when that is 0 to 24 h."""
    now_ms = int(time.time() * 1000)
    recent = flake_id(now_ms - 90_000)  # started 90 s ago
    derived = compose_session_id(now_ms - 600_000, 3, 0)  # started 10 min ago, only in a token
    token = f"{base36(derived)}.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
    cases = {
        "recent session": {"openReplaySession.id": recent},
        "recent session as an int": {"openReplaySession.id": int(recent)},
        "token only": {"openReplaySessionToken": token},
        "ignores a sent link": {
            "openReplaySession.id": recent,
            "openReplaySession.url": "https://evil.example/session/1",
        },
        "starts after the record": {"openReplaySession.id": flake_id(now_ms + 3_600_000)},
        "started two days ago": {"openReplaySession.id": flake_id(now_ms - 2 * 86_400_000)},
        "not a flake id": {"openReplaySession.id": "42"},
        "beyond int64": {"openReplaySession.id": "18446744073709551615"},
        "no session": {},
    }
    env = {**accounts.basic_env(), "OTEL_OPENREPLAY_REPLAY_URL": REPLAY_BASE + "/"}  # trailing / is dropped
    with stack.Collector(stack.CONFIG, env, binary=binary) as collector:
        hits, docs, sent_ms = send_cases(collector, reader, cases)

    def link(message: str) -> str:
        return str(docs[message]["openReplaySession"]["url"])

    for message in ("recent session", "recent session as an int", "ignores a sent link", "token only"):
        doc = docs[message]
        session = doc["openReplaySession"]["id"]
        start = session_start_ms(int(session))
        assert link(message).startswith(f"{REPLAY_BASE}/session/{session}?jumpto="), message
        jumpto = _jumpto(link(message))
        assert jumpto == _epoch_ms(doc["@timestamp"]) - start, message  # the document's own time
        assert abs(jumpto - (sent_ms[message] - start)) <= 1000, message  # the moment it was logged
    assert docs["token only"]["openReplaySession"]["id"] == str(derived)
    for message in ("starts after the record", "started two days ago", "not a flake id", "beyond int64"):
        session = docs[message]["openReplaySession"]["id"]
        assert link(message) == f"{REPLAY_BASE}/session/{session}", message
    assert "openReplaySession" not in docs["no session"]
    assert not any("/session/" in hit["_source"]["message"] for hit in hits)  # never in the prefix


@pytest.mark.e2e
def test_replay_link_without_the_variable(es_collector: stack.Collector, reader: Elasticsearch) -> None:
    """OTEL_OPENREPLAY_REPLAY_URL unset: no link is made; a link the service sent is kept only if it is a
    replay link (http/https, /session/<this document's session id>, optional jumpto)."""
    session = flake_id(int(time.time() * 1000) - 60_000)
    own = f"{REPLAY_BASE}/session/{session}?jumpto=60000"
    cases = {
        "valid link": ({"openReplaySession.id": session, "openReplaySession.url": own}, own),
        "valid link without jumpto": (
            {"openReplaySession.id": session, "openReplaySession.url": f"http://or.local:8080/1/session/{session}"},
            f"http://or.local:8080/1/session/{session}",
        ),
        "another session's link": (
            {"openReplaySession.id": session, "openReplaySession.url": f"{REPLAY_BASE}/session/1{session}"},
            None,
        ),
        "not http": (
            {"openReplaySession.id": session, "openReplaySession.url": f"javascript:x/session/{session}"},
            None,
        ),
        "a quote in it": (
            {"openReplaySession.id": session, "openReplaySession.url": f'https://a"b/session/{session}'},
            None,
        ),
        "text after it": (
            {"openReplaySession.id": session, "openReplaySession.url": f"{own} [openReplaySessionToken=evil]"},
            None,
        ),
        "session without a link": ({"openReplaySession.id": session}, None),
        "link without a session": ({"openReplaySession.url": own}, None),
    }
    sent = {message: attributes for message, (attributes, _) in cases.items()}
    hits, docs, _ = send_cases(es_collector, reader, sent)
    for message, (_, expected) in cases.items():
        assert docs[message].get("openReplaySession", {}).get("url") == expected, message
    assert docs["session without a link"]["openReplaySession"] == {"id": session}
    assert "openReplaySession" not in docs["link without a session"]
    assert not any("evil" in hit["_source"]["message"] for hit in hits)
