"""The collector's OTEL_OPENREPLAY_REPLAY_URL: a value outside the package's rule makes no link, and nothing else.

The collector cannot refuse to start on a bad value (the Python side does: replay.parse_replay_url), so
the config's OTTL writes a link only when the value follows the same rule: an http(s) URL with a host, no
query, fragment or whitespace, its path ending in the numeric project id; surrounding whitespace and
trailing ``/`` are dropped. Documents go to the debug exporter (no Elasticsearch needed) and are compared
with the Python layout's for the same records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from otel_openreplay import layout
from tests.flakeid import flake_id
from tests.stack import collector as stack
from tests.test_collector import DUMMY_ES_URL, TOKEN, by_message, sending, wait_for_debug

pytestmark = pytest.mark.e2e

DASHBOARD = "https://openreplay.example.com/3"


@pytest.fixture(scope="module")
def binary(collector_binary: Path) -> Path:
    return collector_binary


def _documents_for(replay_url: str, binary: Path) -> tuple[dict[str | None, dict[str, Any]], list[Any]]:
    """Run the collector (debug exporter) with ``replay_url`` over the cases: its documents by message, the records."""
    session = flake_id(int(time.time() * 1000) - 60_000)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("session by id", {"openReplaySession.id": session}),
        ("session from the token", {"openReplaySessionToken": TOKEN}),
        (
            "a replay link the service sent",
            {"openReplaySession.id": session, "openReplaySession.url": f"{DASHBOARD}/session/{session}"},
        ),
        ("no session", {"exception.type": "ValueError", "exception.message": "bad amount"}),
    ]
    env = {"OPENREPLAY_ES_URL": DUMMY_ES_URL, "OTEL_OPENREPLAY_REPLAY_URL": replay_url}
    config = [stack.CONFIG, stack.DEBUG_OVERLAY]
    with stack.Collector(config, env, binary=binary) as collector, sending(collector) as sender:
        for message, attributes in cases:
            sender.emit(message, attributes=attributes)
        documents = wait_for_debug(collector, sender.service, len(cases))
        assert len(documents) == len(cases)
        records = list(sender.memory.get_finished_logs())
    return by_message(documents), records


def _python_documents(records: list[Any], replay_url: str | None) -> dict[str | None, dict[str, Any]]:
    """What the Python exporter writes for the same records with ``replay_url`` (``None``: unset)."""
    documents = (layout.to_document(record, replay_url=replay_url) for record in records)
    return {doc.get("message"): layout.expand_dotted(doc) for doc in documents if doc is not None}


@pytest.mark.parametrize(
    "value",
    [
        "openreplay.example.com/3",  # no scheme
        "ftp://openreplay.example.com/3",  # not http(s)
        "https:///3",  # no host
        "https://openreplay.example.com",  # no project id
        "https://openreplay.example.com/3/dashboard",  # the path does not end in the project id
        "https://openreplay.example.com/3?project=3",  # a query
        "https://openreplay.example.com/3#replay",  # a fragment
        "https://openreplay.example.com/my project/3",  # whitespace inside
    ],
)
def test_a_value_outside_the_rule_writes_no_link_and_leaves_the_documents_intact(binary: Path, value: str) -> None:
    """No openReplaySession.url on any document (not even a link the service sent); everything else as usual."""
    got, records = _documents_for(value, binary)
    expected = _python_documents(records, None)
    assert set(got) == set(expected)
    for message, document in expected.items():
        document.get("openReplaySession", {}).pop("url", None)  # the only difference from an unset variable
        assert got[message] == document, message
        assert "url" not in got[message].get("openReplaySession", {}), message
    assert sum("openReplaySession" in doc for doc in got.values()) == 3  # the sessions are still written


@pytest.mark.parametrize(
    ("value", "base"),
    [
        (f" {DASHBOARD}//\n", DASHBOARD),  # surrounding whitespace and trailing / dropped, as in Python
        ("HTTP://user@[::1]:8080/openreplay/42/", "HTTP://user@[::1]:8080/openreplay/42"),
    ],
)
def test_a_value_inside_the_rule_links_as_python_does(binary: Path, value: str, base: str) -> None:
    """The same links as the Python exporter with the same value: ``<base>/session/<id>?jumpto=…``."""
    got, records = _documents_for(value, binary)
    expected = _python_documents(records, base)
    assert set(got) == set(expected)
    for message, document in expected.items():
        assert got[message] == document, message
    links = {message: doc["openReplaySession"]["url"] for message, doc in got.items() if "openReplaySession" in doc}
    assert len(links) == 3
    assert all(link.startswith(f"{base}/session/") for link in links.values())
    (by_id,) = [link for message, link in links.items() if str(message).endswith("] session by id")]
    assert "?jumpto=" in by_id  # the session started a minute ago


def test_a_blank_value_is_unset(binary: Path) -> None:
    """Whitespace only is off, as in Python: a replay link the service sent for its own session is kept."""
    got, records = _documents_for(" \t", binary)
    expected = _python_documents(records, None)
    assert set(got) == set(expected)
    for message, document in expected.items():
        assert got[message] == document, message
    kept = [doc["openReplaySession"]["url"] for doc in got.values() if "url" in doc.get("openReplaySession", {})]
    assert len(kept) == 1
