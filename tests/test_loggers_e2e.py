"""End to end: loguru and structlog apps under ``opentelemetry-instrument``, each record exported once.

The examples ``examples/loguru_app.py`` and ``examples/structlog_app.py`` run in gunicorn as users run
them, in each of the logging set-ups they offer (``SHOP_LOGURU_SETUP``, ``SHOP_STRUCTLOG_SETUP``), with
the console exporter; tests send real HTTP requests and count what the exporter printed. Two of them
also go through the real collector into real Elasticsearch and are read with OpenReplay's own queries.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from otel_openreplay.doctor import LEGACY_TOKEN_RE
from tests.apps import BIN, App, prefixed_by
from tests.stack import collector as collector_stack
from tests.stack.fixtures import Accounts
from tests.test_pipeline_e2e import assert_contract, legacy_read, new_token, wait_for

pytestmark = pytest.mark.e2e

_ids = itertools.count(770001)

SETUPS = {
    "loguru-alone": ("loguru", {"SHOP_LOGURU_SETUP": "alone"}),
    "loguru-intercept": ("loguru", {"SHOP_LOGURU_SETUP": "intercept"}),
    "loguru-intercept-root": ("loguru", {"SHOP_LOGURU_SETUP": "intercept-root"}),
    "loguru-propagate": ("loguru", {"SHOP_LOGURU_SETUP": "propagate"}),
    "structlog-native": ("structlog", {"SHOP_STRUCTLOG_SETUP": "native"}),
    "structlog-stdlib": ("structlog", {"SHOP_STRUCTLOG_SETUP": "stdlib"}),
    # without contrib's structlog instrumentation (the event still the message, once)
    "structlog-stdlib-no-contrib": (
        "structlog",
        {"SHOP_STRUCTLOG_SETUP": "stdlib", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "structlog"},
    ),
}


class LoggerApp(App):
    """An example of ``examples/<library>_app.py`` in gunicorn (4 threads) under ``opentelemetry-instrument``."""

    def __init__(self, library: str, env: Mapping[str, str] | None = None) -> None:
        super().__init__(library, env)
        self.library = library

    def command(self) -> list[str]:
        return [
            str(BIN / "opentelemetry-instrument"),
            str(BIN / "gunicorn"), "--workers", "1", "--threads", "4",
            "--bind", f"127.0.0.1:{self.port}", f"examples.{self.library}_app:app",
        ]  # fmt: skip


def new_id() -> str:
    return str(next(_ids))


def settled(app: App, predicate: Any, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The records matching ``predicate`` once ``count`` of them are there, read again a second later (a
    second copy, if there were one, would be exported by then: the batch delay is 100 ms)."""
    deadline = time.monotonic() + timeout
    while len([r for r in app.logs() if predicate(r)]) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    return [record for record in app.logs() if predicate(record)]


@pytest.fixture(scope="module", params=list(SETUPS))
def app(request: pytest.FixtureRequest) -> Iterator[LoggerApp]:
    library, env = SETUPS[request.param]
    with LoggerApp(library, env) as running:
        yield running


class TestEachSetUp:
    def test_handler_error_tagged_once(self, app: LoggerApp) -> None:
        """The handler's error: once, the prefix in front of the message (the event, not a dict), attributes."""
        token, session_id = new_token()
        assert app.get("/checkout", {"X-OpenReplay-SessionToken": token}, order="77").status_code == 402
        (record,) = settled(app, prefixed_by(session_id), 1)
        prefix = f"[openReplaySessionToken={token}] [openReplaySession.id={session_id}] "
        expected = (
            "payment declined: card 4242 expired" if app.library == "loguru" else "payment declined: card expired"
        )
        assert record["body"] == prefix + expected
        assert record["attributes"]["openReplaySessionToken"] == token
        assert record["attributes"]["order"] == "77"
        if app.library == "structlog":
            assert record["attributes"]["card"] == "4242"

    def test_logged_exception_keeps_its_traceback(self, app: LoggerApp) -> None:
        """``logger.exception`` / ``log.exception`` in the handler: once, with exception.* attributes."""
        session_id = new_id()
        assert app.get("/refund", {"openReplaySession.id": session_id}).status_code == 503
        (record,) = settled(app, prefixed_by(session_id), 1)
        assert record["body"] == f"[openReplaySession.id={session_id}] refund failed"
        assert record["attributes"]["exception.type"] == "ConnectionError"
        assert "refund service unreachable" in record["attributes"]["exception.stacktrace"]

    def test_unhandled_exception_once(self, app: LoggerApp) -> None:
        """Flask's own record of an unhandled exception (through ``logging``) arrives once, tagged, traceback."""
        session_id = new_id()
        assert app.get("/crash", {"openReplaySession.id": session_id}).status_code == 500
        (record,) = settled(app, prefixed_by(session_id), 1)
        assert record["body"] == f"[openReplaySession.id={session_id}] Exception on /crash [GET]"
        assert record["attributes"]["exception.type"] == "RuntimeError"
        assert "inventory service timed out" in record["attributes"]["exception.stacktrace"]

    def test_thread_tagged(self, app: LoggerApp) -> None:
        """A thread started by the handler logs with the request's session."""
        session_id = new_id()
        app.get("/thread", {"openReplaySession.id": session_id})
        (record,) = settled(app, prefixed_by(session_id), 1)
        assert record["body"] == f"[openReplaySession.id={session_id}] receipt rendering failed"

    def test_no_header_untagged(self, app: LoggerApp) -> None:
        """A request without a session header: its error is exported untouched."""
        label = f"plain-{new_id()}"
        app.get("/slow", label=label)
        records = settled(app, lambda r: f"slow step one {label}" in str(r["body"]), 1)
        assert [r["body"] for r in records] == [f"slow step one {label}"]
        assert not any(key.startswith("openReplaySession") for key in records[0]["attributes"] or {})

    def test_interleaved_requests_keep_their_sessions(self, app: LoggerApp) -> None:
        """Two requests at once with different sessions: every record carries its own request's session."""
        first, second = new_id(), new_id()
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda sid: app.get("/slow", {"openReplaySession.id": sid}, label=sid), (first, second))
            )
        assert [answer.status_code for answer in answers] == [200, 200]
        for session_id in (first, second):
            records = settled(app, lambda r, sid=session_id: "slow step " in str(r["body"]) and sid in r["body"], 2)
            assert sorted(r["body"] for r in records) == [
                f"[openReplaySession.id={session_id}] slow step one {session_id}",
                f"[openReplaySession.id={session_id}] slow step two {session_id}",
            ]


def test_loguru_off_setting() -> None:
    """OTEL_OPENREPLAY_LOGURU=false: loguru's records stay in loguru; ``logging``'s (Flask's) still arrive."""
    with LoggerApp("loguru", {"OTEL_OPENREPLAY_LOGURU": "false"}) as app:
        session_id = new_id()
        app.get("/checkout", {"openReplaySession.id": session_id})
        app.get("/crash", {"openReplaySession.id": session_id})
        (record,) = settled(app, prefixed_by(session_id), 1)
        assert record["body"].endswith("Exception on /crash [GET]")
        assert not any("payment declined" in str(r["body"]) for r in app.logs())


# --- through the collector into Elasticsearch, read as OpenReplay reads ------------------------------


@pytest.fixture(scope="module")
def collector(collector_binary: Path, accounts: Accounts) -> Iterator[collector_stack.Collector]:
    with collector_stack.Collector(collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary) as running:
        yield running


@pytest.mark.parametrize(
    ("library", "env"),
    [("loguru", {"SHOP_LOGURU_SETUP": "intercept"}), ("structlog", {"SHOP_STRUCTLOG_SETUP": "stdlib"})],
    ids=["loguru-intercept", "structlog-stdlib"],
)
def test_through_the_collector_both_openreplay_reads(
    library: str, env: dict[str, str], collector: collector_stack.Collector, reader: Elasticsearch
) -> None:
    """The handler's error and Flask's unhandled-exception record: each one document, found by ≥1.21's and
    ≤1.20's own reads, in the document contract, the traceback in ``message``."""
    otlp = {
        **env,
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": collector.http_logs_url,
    }
    with LoggerApp(library, otlp) as app:
        token, session_id = new_token()
        header = {"X-OpenReplay-SessionToken": token}
        assert app.get("/checkout", header).status_code == 402
        assert app.get("/crash", header).status_code == 500
        docs = wait_for(reader, session_id, 2)
    assert len(docs) == 2
    for doc in docs:
        assert_contract(doc, service=f"{library}-shop", token=token, session_id=session_id)
    by_end = {doc["message"].rsplit("] ", 1)[-1].splitlines()[0]: doc for doc in docs}
    expected = "payment declined: card 4242 expired" if library == "loguru" else "payment declined: card expired"
    assert set(by_end) == {expected, "Exception on /crash [GET]"}
    crash = by_end["Exception on /crash [GET]"]
    assert crash["message"].endswith("RuntimeError: inventory service timed out")
    assert "Traceback (most recent call last):" in crash["message"]
    legacy = legacy_read(reader, token)
    assert len(legacy) == 2
    for doc in legacy:
        match = LEGACY_TOKEN_RE.search(doc["message"])
        assert match is not None
        assert match.group(1) == token
