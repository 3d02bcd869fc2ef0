"""The replay link end to end: an error logged in a session lands in the real Elasticsearch with its link.

The direct exporter writes the documents; OpenReplay's own ≥ 1.21 search finds them, and each carries
``openReplaySession.url`` (mapped ``keyword`` by ``es setup``) with a ``jumpto`` within a second of the
error's offset into the session, the session's start read from a flake id built the way OpenReplay's
backend builds it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from opentelemetry.sdk._logs import LoggerProvider

from otel_openreplay import cli, configure, session
from otel_openreplay.exporter import ElasticsearchLogExporter, ExportResult
from otel_openreplay.template import setup_index
from tests.conftest import otel_logging_handler
from tests.fixtures.documents.golden import cases, sdk_record
from tests.flakeid import flake_id

DASHBOARD = "https://openreplay.example.com/3"

pytestmark = pytest.mark.e2e


def _log_error_in_session(exporter: ElasticsearchLogExporter, session_id: str, **settings: object) -> float:
    """Log one error through stdlib logging in ``session_id``, via configure(); return when it was logged (ms)."""
    provider = LoggerProvider(shutdown_on_exit=False)
    wiring = configure(logger_provider=provider, exporter=exporter, capture_exceptions=False, **settings)
    handler = otel_logging_handler(provider)
    logger = logging.getLogger(f"shop.checkout.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    try:
        with session(session_id=session_id):
            logged_ms = time.time() * 1000
            logger.error("payment provider timed out")
        provider.force_flush()
    finally:
        logger.removeHandler(handler)
        wiring.undo()
        provider.shutdown()
    return logged_ms


def _openreplay_hits(es_client, index: str, session_id: str) -> list[dict]:
    """OpenReplay ≥ 1.21's own read of a session's records (match_phrase on message)."""
    es_client.indices.refresh(index=index)
    answer = es_client.search(
        index=index, size=1000, query={"match_phrase": {"message": f"openReplaySession.id={session_id}"}}
    )
    return [hit["_source"] for hit in answer["hits"]["hits"]]


def test_document_carries_the_link_at_the_errors_moment(es_node, es_client):
    """The exporter's own setting: the document's link opens the replay within a second of the error."""
    index = f"replay-{uuid.uuid4().hex[:8]}"
    setup_index(es_client, index)
    started_ms = int(time.time() * 1000) - 42_000  # the user has been on the page for 42 s
    session_id = flake_id(started_ms, shard=0x2C1, seq=3)
    exporter = ElasticsearchLogExporter(
        es_node.url, user=es_node.user, password=es_node.password, index=index, replay_url=DASHBOARD, environ={}
    )
    logged_ms = _log_error_in_session(exporter, session_id)

    (source,) = _openreplay_hits(es_client, index, session_id)
    link = source["openReplaySession"]["url"]
    base, _, jumpto = link.partition("?jumpto=")
    assert base == f"{DASHBOARD}/session/{session_id}"
    assert abs(int(jumpto) - (logged_ms - started_ms)) <= 1000
    assert "openreplay.example.com" not in source["message"]  # OpenReplay's search contract: prefix only

    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert mapping["openReplaySession"]["properties"]["url"]["type"] == "keyword"
    exact = es_client.search(index=index, query={"term": {"openReplaySession.url": link}})
    assert exact["hits"]["total"]["value"] == 1  # a keyword: the whole link, not analysed
    exporter.shutdown()


def test_link_from_the_log_processor_is_kept_by_an_exporter_without_the_setting(es_node, es_client):
    """configure(replay_url=...) links the record; an exporter with no setting of its own writes that link."""
    index = f"replay-{uuid.uuid4().hex[:8]}"
    setup_index(es_client, index)
    started_ms = int(time.time() * 1000) - 3_000
    session_id = flake_id(started_ms, shard=0x2C1, seq=3)
    exporter = ElasticsearchLogExporter(
        es_node.url, user=es_node.user, password=es_node.password, index=index, environ={}
    )
    assert exporter.replay_url is None
    logged_ms = _log_error_in_session(exporter, session_id, replay_url=DASHBOARD)

    (source,) = _openreplay_hits(es_client, index, session_id)
    base, _, jumpto = source["openReplaySession"]["url"].partition("?jumpto=")
    assert base == f"{DASHBOARD}/session/{session_id}"
    assert abs(int(jumpto) - (logged_ms - started_ms)) <= 1000
    exporter.shutdown()


def test_golden_replay_cases_land_as_their_documents(es_node, es_client):
    """Each golden case with a writer replay URL, exported with that setting, is stored exactly as golden."""
    index = f"replay-{uuid.uuid4().hex[:8]}"
    setup_index(es_client, index)
    golden = [case for case in cases() if case.replay_url is not None]
    assert len(golden) >= 8
    for replay_url in {case.replay_url for case in golden}:
        exporter = ElasticsearchLogExporter(
            es_node.url, user=es_node.user, password=es_node.password, index=index, replay_url=replay_url, environ={}
        )
        batch = [sdk_record(case.record) for case in golden if case.replay_url == replay_url]
        assert exporter.export(batch) == ExportResult.SUCCESS
        exporter.shutdown()
    es_client.indices.refresh(index=index)
    stored = [hit["_source"] for hit in es_client.search(index=index, size=100)["hits"]["hits"]]
    assert sorted(stored, key=repr) == sorted((case.document for case in golden), key=repr)


def test_es_check_prints_the_replay_link(es_node, es_client, capsys, monkeypatch):
    """`es check` on a session with a logged error ends with its replay link, opened at that error."""
    setup_index(es_client, "logs")  # OpenReplay >= 1.21 reads `logs`, whatever is configured
    started_ms = int(time.time() * 1000) - 20_000
    session_id = flake_id(started_ms, shard=0x2C1, seq=3)
    exporter = ElasticsearchLogExporter(
        es_node.url, user=es_node.user, password=es_node.password, index="logs", replay_url=DASHBOARD, environ={}
    )
    logged_ms = _log_error_in_session(exporter, session_id)
    es_client.indices.refresh(index="logs")
    exporter.shutdown()

    monkeypatch.setenv("OTEL_OPENREPLAY_REPLAY_URL", DASHBOARD)
    auth = ["--url", es_node.url, "--user", es_node.user, "--password", es_node.password]
    code = cli.main(["es", "check", *auth, "--session-id", session_id])
    out = capsys.readouterr().out
    assert code == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"Replay: {DASHBOARD}/session/{session_id}?jumpto=")
    jumpto = int(last.rpartition("=")[2])
    assert abs(jumpto - (logged_ms - started_ms)) <= 1000  # the first error shown, in ms precision

    assert cli.main(["es", "check", *auth, "--session-id", session_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replay_url"] == last.removeprefix("Replay: ")
