"""The whole pipeline, end to end: example apps → OTLP → the collector → Elasticsearch → OpenReplay's reads.

Real processes only: the Flask example (gunicorn) exports OTLP/gRPC, the FastAPI example (uvicorn)
OTLP/HTTP, and one more app per family over OTLP/HTTP — Falcon (WSGI, gunicorn), Django's ASGI
handler (uvicorn), aiohttp (its own server) — all under ``opentelemetry-instrument`` with no
otel-openreplay setting; the collector runs the shipped config as a least-privilege writer; every
assertion reads Elasticsearch as OpenReplay does, with a user that has only ``read`` on ``logs``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from elasticsearch import Elasticsearch

from otel_openreplay.doctor import LEGACY_TOKEN_RE, current_request, legacy_request
from tests.apps import App
from tests.stack import collector as collector_stack
from tests.stack.fixtures import Accounts
from tests.stack.ingest import base36

pytestmark = pytest.mark.e2e
T = TypeVar("T")

JSON = {"content-type": "application/json", "accept": "application/json"}
_serial = itertools.count(5_000_001)  # distinct session ids per request


def new_token() -> tuple[str, str]:
    """A fresh token in OpenReplay's shape and the session id it encodes."""
    session_id = next(_serial)
    return f"{base36(session_id)}.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R", str(session_id)


FAMILIES = ("falcon", "django-asgi", "aiohttp")
"""One more app per family (WSGI, ASGI, aiohttp), each with a framework-specific path to the session."""


@pytest.fixture(scope="module")
def collector(collector_binary: Path, accounts: Accounts) -> Iterator[collector_stack.Collector]:
    with collector_stack.Collector(collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary) as running:
        yield running


class Apps:
    """The example apps exporting to the collector, each started the first time a test asks for it."""

    def __init__(self, stack: contextlib.ExitStack, collector: collector_stack.Collector) -> None:
        self._stack = stack
        self._running: dict[str, App] = {}
        logs_only = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "none"}
        self._grpc = {
            **logs_only,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://{collector.grpc_endpoint}",
            "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "true",
        }
        self._http = {
            **logs_only,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": collector.http_logs_url,
        }

    def __getitem__(self, kind: str) -> App:
        """Flask sends over OTLP/gRPC, every other app over OTLP/HTTP."""
        if kind not in self._running:
            env = self._grpc if kind == "flask" else self._http
            self._running[kind] = self._stack.enter_context(App(kind, env))
        return self._running[kind]


@pytest.fixture(scope="module")
def apps(collector: collector_stack.Collector) -> Iterator[Apps]:
    with contextlib.ExitStack() as stack:
        yield Apps(stack, collector)


@pytest.fixture
def app(apps: Apps, request: pytest.FixtureRequest) -> App:
    """The running example app of the kind the test is parametrised with (indirectly)."""
    return apps[request.param]


def search(reader: Elasticsearch, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents one of OpenReplay's requests (``current_request``, ``legacy_request``) finds, as ``reader``."""
    answer = reader.perform_request(
        "POST", request["path"], params=request["params"], body=request["body"], headers=JSON
    )
    return [hit["_source"] for hit in answer["hits"]["hits"]]


def poll(probe: Callable[[], list[T]], count: int, timeout: float = 30, settle: float = 0) -> list[T]:
    """``probe()``'s answer once it has ``count`` items (read again ``settle`` s later), else its last one."""
    deadline = time.monotonic() + timeout
    found = probe()
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.3)
        found = probe()
    if len(found) >= count and settle:
        time.sleep(settle)  # and nothing more arrives
        return probe()
    return found


def wait_for(reader: Elasticsearch, session_id: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """OpenReplay ≥ 1.21's read for ``session_id``, polled until ``count`` documents are there."""
    return poll(lambda: search(reader, current_request(session_id)), count, timeout, settle=1.5)


def legacy_read(reader: Elasticsearch, token: str) -> list[dict[str, Any]]:
    """OpenReplay ≤ 1.20's read (the last hour of ``logs``), narrowed to the documents carrying ``token``."""
    legacy = search(reader, legacy_request("logs", int((time.time() - 3600) * 1000)))
    return [doc for doc in legacy if doc.get("openReplaySessionToken") == token]


def assert_contract(
    doc: dict[str, Any], *, service: str, token: str | None, session_id: str | None, traced: bool = True
) -> None:
    """Field by field, docs/DESIGN.md's document contract (``traced``: logged while a span was current)."""
    assert doc["@timestamp"] == doc["utc_time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["utc_time"])
    utc = datetime.fromisoformat(doc["utc_time"].replace("Z", "+00:00"))  # Python 3.10 reads no "Z"
    assert abs(utc.timestamp() - time.time()) < 300
    assert doc["tags"] == ["error"]
    assert doc["level"] == "error"
    assert doc["service"] == {"name": service}
    assert doc["log"]["level"] == "ERROR"
    if traced:
        assert re.fullmatch(r"[0-9a-f]{32}", doc["trace"]["id"])
        assert re.fullmatch(r"[0-9a-f]{16}", doc["span"]["id"])
    else:
        assert "trace" not in doc
    prefix = ""
    if token is not None:
        prefix += f"[openReplaySessionToken={token}] "
        assert doc["openReplaySessionToken"] == token
    else:
        assert "openReplaySessionToken" not in doc
    if session_id is not None:
        prefix += f"[openReplaySession.id={session_id}] "
        # The replay link is there only where the writer has OTEL_OPENREPLAY_REPLAY_URL (tests/test_replay*.py).
        assert {k: v for k, v in doc["openReplaySession"].items() if k != "url"} == {"id": session_id}
        assert "url" not in doc["openReplaySession"] or f"/session/{session_id}" in doc["openReplaySession"]["url"]
    else:
        assert "openReplaySession" not in doc
    assert doc["message"].startswith(prefix)
    assert doc["message"].count("openReplaySessionToken=") == (1 if token else 0)
    assert doc["message"].count("openReplaySession.id=") == (1 if session_id else 0)
    assert "" not in _leaves(doc)
    assert None not in _leaves(doc)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)] or [None]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)] or [None]
    return [value]


@pytest.mark.parametrize(
    "app", ["flask", "fastapi", *FAMILIES], ids=["flask-gRPC", "fastapi-HTTP", *FAMILIES], indirect=True
)
class TestPipeline:
    """Flask sends over OTLP/gRPC, the others over OTLP/HTTP: the same behaviours, each app."""

    def test_handler_error_reaches_both_openreplay_reads(self, app: App, reader: Elasticsearch) -> None:
        """A handler's error is found by ≥1.21's and ≤1.20's own reads, in the document contract."""
        token, session_id = new_token()
        assert app.get("/checkout", {"X-OpenReplay-SessionToken": token}).status_code == 402
        (doc,) = wait_for(reader, session_id, 1)
        assert_contract(doc, service=f"{app.kind}-shop", token=token, session_id=session_id)
        assert doc["message"].endswith("] payment declined: card 4242 expired")
        assert doc["log"]["logger"] == "shop.checkout"
        (legacy,) = legacy_read(reader, token)
        match = LEGACY_TOKEN_RE.search(legacy["message"])
        assert match is not None
        assert match.group(1) == token  # ≤1.20's regex recovers the whole token

    def test_info_and_warning_never_arrive(self, app: App, reader: Elasticsearch) -> None:
        """Only the ERROR record of /checkout reaches Elasticsearch, not its INFO and WARNING records."""
        token, session_id = new_token()
        app.get("/checkout", {"X-OpenReplay-SessionToken": token})
        docs = wait_for(reader, session_id, 1)
        assert [d["level"] for d in docs] == ["error"]
        assert not any("checkout started" in d["message"] or "backup" in d["message"] for d in docs)

    def test_unhandled_exception_text_in_message(self, app: App, reader: Elasticsearch) -> None:
        """An unhandled exception arrives once, with its type, text and traceback in `message` and `error.*`."""
        _, session_id = new_token()
        assert app.get("/crash", {"openReplaySession.id": session_id}).status_code == 500
        (doc,) = wait_for(reader, session_id, 1)
        # aiohttp logs it itself after its span has ended: the record has the session, not the trace.
        traced = app.kind != "aiohttp"
        assert_contract(doc, service=f"{app.kind}-shop", token=None, session_id=session_id, traced=traced)
        assert "Traceback (most recent call last):" in doc["message"]
        assert doc["message"].endswith("RuntimeError: inventory service timed out")
        assert doc["error"]["type"] == "RuntimeError"
        assert doc["error"]["message"] == "inventory service timed out"
        assert "inventory service timed out" in doc["error"]["stack_trace"]

    def test_error_without_session_arrives_without_prefix(self, app: App, reader: Elasticsearch) -> None:
        """No header: the error is indexed, with no prefix and no session field."""
        app.get("/checkout", {"X-Request-Id": f"no-session-{app.kind}-{time.time_ns()}"})
        query = {
            "bool": {
                "filter": [
                    {"term": {"service.name": f"{app.kind}-shop"}},
                    {"match_phrase": {"message": "payment declined"}},
                ],
                "must_not": [{"exists": {"field": "openReplaySession.id"}}],
            }
        }
        hits = poll(lambda: reader.search(index="logs", query=query, size=5)["hits"]["hits"], 1)
        docs = [hit["_source"] for hit in hits]
        assert docs
        for doc in docs:
            assert doc["message"] == "payment declined: card 4242 expired"
            assert_contract(doc, service=f"{app.kind}-shop", token=None, session_id=None)


def test_the_session_follows_a_call_between_services(apps: Apps, reader: Elasticsearch) -> None:
    """Flask calls FastAPI over HTTP: FastAPI's error lands on the same replay."""
    token, session_id = new_token()
    front, back = apps["flask"], apps["fastapi"]
    assert front.get("/call", {"X-OpenReplay-SessionToken": token}, url=f"{back.url}/checkout").ok
    (doc,) = wait_for(reader, session_id, 1)
    assert_contract(doc, service="fastapi-shop", token=token, session_id=session_id)


def test_reader_cannot_write(reader: Elasticsearch) -> None:
    """The OpenReplay user used above really is read-only: indexing into `logs` is refused."""
    from elasticsearch import AuthorizationException

    with pytest.raises(AuthorizationException):
        reader.index(index="logs", document={"message": "forged"})


def test_both_export_paths_write_the_same_documents(
    collector: collector_stack.Collector, accounts: Accounts, reader: Elasticsearch
) -> None:
    """The same SDK records, via the collector and via ElasticsearchLogExporter, are the same documents in ES."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    from otel_openreplay.exporter import ElasticsearchLogExporter
    from otel_openreplay.template import setup_index
    from tests.stack import es

    service = f"both-paths-{time.time_ns()}"
    direct_index = "logs-direct"
    with es.client(accounts.node) as admin:
        setup_index(admin, direct_index)
    provider = LoggerProvider(resource=Resource({"service.name": service}), shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=collector.http_logs_url)))
    direct = ElasticsearchLogExporter(
        accounts.node.url, user=accounts.node.user, password=accounts.node.password, index=direct_index
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(direct))
    token, session_id = new_token()
    logger = provider.get_logger("checkout.worker")
    for body, attributes in [
        ("card declined", {"openReplaySessionToken": token}),
        (f"[openReplaySessionToken={token}] already prefixed", {"openReplaySessionToken": token}),
        ("id only", {"openReplaySession.id": session_id}),
        ("no session", {}),
        ("hostile", {"openReplaySessionToken": "x] [openReplaySessionToken=evil"}),
        ("failed", {"exception.type": "KeyError", "exception.message": "sku", "exception.stacktrace": "Trace\n"}),
    ]:
        logger.emit(body=body, severity_text="ERROR", severity_number=_error(), attributes=attributes)
    logger.emit(body="only a warning", severity_text="WARN", severity_number=_error(-4))
    provider.shutdown()

    def documents(client: Elasticsearch, index: str) -> dict[str, dict[str, Any]]:
        query = {"term": {"service.name": service}}
        hits = poll(lambda: client.search(index=index, query=query, size=50)["hits"]["hits"], 6)
        return {hit["_source"]["message"]: hit["_source"] for hit in hits}

    via_collector = documents(reader, "logs")
    with es.client(accounts.node) as admin:
        via_python = documents(admin, direct_index)
    assert len(via_collector) == 6
    assert via_collector == via_python


def _error(offset: int = 0) -> Any:
    from opentelemetry._logs import SeverityNumber

    return SeverityNumber(17 + offset)
