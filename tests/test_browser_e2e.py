"""From a real browser: OpenReplay's own tracker, the session header, CORS, and the record on the replay.

Real processes only: Debian's Chromium (Selenium) loads the example shop page (``examples/frontend``) from
its own origin; OpenReplay's tracker 19.0.1 (npm) starts against the stand-in ingest and puts the token on
the page's ``fetch`` and ``XMLHttpRequest`` calls to the example apps on another origin (Flask/gunicorn,
FastAPI/uvicorn, Django/gunicorn, under ``opentelemetry-instrument``, their CORS as the examples set it);
their errors go through the real collector into the real Elasticsearch, read as OpenReplay reads them.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from otel_openreplay import cli
from otel_openreplay.cors import TRACKER_HEADER, check
from otel_openreplay.doctor import LEGACY_TOKEN_RE, legacy_request
from otel_openreplay.exit_codes import ExitCode
from otel_openreplay.replay import session_start_ms
from tests.apps import App
from tests.stack import collector as collector_stack
from tests.stack.browser import Browser, FrontendServer, RecordingAPI
from tests.stack.fixtures import Accounts
from tests.stack.ingest import StandInIngest
from tests.test_pipeline_e2e import assert_contract, search, wait_for

pytestmark = pytest.mark.e2e

PROJECT_KEY = "shop-project-key"
REPLAY_URL = "https://openreplay.example.com/3"
"""The dashboard the collector (and, in TestReplayLinkDirect, the app) builds replay links for."""
HEADER = TRACKER_HEADER.lower()  # names as the servers below record them

START = "const shop = await import(arguments[0]); const session = await shop.session;"
PAY_BOTH = START + (
    "const failed = (e) => ({error: e.message}); const sentAt = Date.now();"
    "return {session, sentAt, fetch: await shop.pay().catch(failed), xhr: await shop.payLegacy()};"
)


@pytest.fixture(scope="module")
def ingest() -> Iterator[StandInIngest]:
    with StandInIngest({PROJECT_KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def frontend(tracker_modules: Path, ingest: StandInIngest) -> Iterator[FrontendServer]:
    config = {"apiUrl": "", "ingestPoint": ingest.url, "projectKey": PROJECT_KEY}
    with FrontendServer(config, tracker_modules) as server:
        yield server


@pytest.fixture(scope="module")
def collector(collector_binary: Path, accounts: Accounts) -> Iterator[collector_stack.Collector]:
    env = {**accounts.basic_env(), "OTEL_OPENREPLAY_REPLAY_URL": REPLAY_URL}  # documents carry replay links
    with collector_stack.Collector(collector_stack.CONFIG, env, binary=collector_binary) as running:
        yield running


@pytest.fixture(scope="module", params=["flask", "fastapi", "django"])
def app(
    request: pytest.FixtureRequest, collector: collector_stack.Collector, frontend: FrontendServer
) -> Iterator[App]:
    env = {
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": collector.http_logs_url,
        "OTEL_TRACES_EXPORTER": "none",
        "SHOP_FRONTEND_ORIGINS": frontend.origin,  # the page's origin, as the examples read it
    }
    with App(request.param, env) as running:
        yield running


def open_shop(browser: Browser, frontend: FrontendServer, api_url: str, **config: str) -> str:
    """Open the shop page configured for ``api_url`` in a new session; returns its module's URL for ``import()``.

    The tracker keeps its session in the tab's storage and resumes it on the next page of the same origin
    (as on a real shop); each test starts its own.
    """
    frontend.config.update({"apiUrl": api_url, "projectKey": PROJECT_KEY, **config})
    browser.open(f"{frontend.origin}/blank.html")
    browser.run("sessionStorage.clear(); localStorage.clear();")
    browser.open(f"{frontend.origin}/index.html")
    return f"{frontend.origin}/shop.js"


def assert_replay_links(docs: list[dict], ingest: StandInIngest, session_id: str, sent_at_ms: int) -> None:
    """Each document links to its replay, opened within a second of when the page made the call.

    The session's start is the ``startTimestamp`` the tracker was answered; the link's ``jumpto`` is the
    document's own time minus that start, and the page's clock put the call at the same offset.
    """
    (start,) = [s.reply["startTimestamp"] for s in ingest.log.started if s.reply["sessionID"] == session_id]
    assert session_start_ms(int(session_id)) == start
    for doc in docs:
        base, _, jumpto = doc["openReplaySession"]["url"].partition("?jumpto=")
        assert base == f"{REPLAY_URL}/session/{session_id}"
        doc_ms = int(datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
        assert abs(int(jumpto) - (doc_ms - start)) <= 1
        assert abs(int(jumpto) - (sent_at_ms - start)) < 1000
        assert REPLAY_URL not in doc["message"]  # never in the prefix OpenReplay searches


def cors_errors(browser: Browser) -> list[str]:
    return [entry["message"] for entry in browser.console() if "CORS policy" in entry["message"]]


def run_check_cors(url: str, origin: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["check-cors", url, "--origin", origin])
    return code, out.getvalue()


class TestFromTheBrowserToTheReplay:
    def test_fetch_and_xhr_errors_reach_both_openreplay_reads(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest, app: App, reader: Elasticsearch
    ) -> None:
        """The tracker's token rides on fetch and XHR; their errors are found with its id (≥1.21) and token (≤1.20)."""
        shop = open_shop(browser, frontend, app.url)
        result = browser.run(
            PAY_BOTH.replace(
                "return {",
                "const crash = await fetch(arguments[1] + '/crash').then((r) => r.status, failed); return {crash, ",
            ),
            shop,
            app.url,
        )
        session = result["session"]
        assert session["success"] is True, session
        assert (result["fetch"], result["xhr"]) == (402, 402)
        # An unhandled exception: Flask and Django answer 500 through their CORS middleware; uvicorn answers it
        # outside Starlette's CORSMiddleware, so the page cannot read that 500 (the request did reach the app).
        assert result["crash"] == ({"error": "Failed to fetch"} if app.kind == "fastapi" else 500)
        session_id, token = session["sessionID"], session["sessionToken"]
        assert int(token.split(".")[0], 36) == int(session_id)  # the token carries the id the tracker returned
        assert [s.origin for s in ingest.log.started if s.reply["sessionID"] == session_id] == [frontend.origin]

        docs = wait_for(reader, session_id, 3)
        assert len(docs) == 3
        for doc in docs:
            assert_contract(doc, service=f"{app.kind}-shop", token=token, session_id=session_id)
        declined = [d for d in docs if d["message"].endswith("] payment declined: card 4242 expired")]
        assert len(declined) == 2  # the fetch and the XHR
        (crash,) = [d for d in docs if d not in declined]
        assert crash["error"]["type"] == "RuntimeError"
        assert_replay_links(docs, ingest, session_id, result["sentAt"])
        legacy = search(reader, legacy_request("logs", int((time.time() - 3600) * 1000)))
        mine = [d for d in legacy if d.get("openReplaySessionToken") == token]
        assert len(mine) == 3
        assert all((m := LEGACY_TOKEN_RE.search(d["message"])) and m.group(1) == token for d in mine)
        if app.kind != "fastapi":
            assert not cors_errors(browser)

    def test_session_start_derived_from_the_id_is_the_trackers(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest, app: App
    ) -> None:
        """``(id >> 24) + 1550000000000`` is the ``startTimestamp`` the tracker received and keeps."""
        shop = open_shop(browser, frontend, app.url)
        result = browser.run(
            START + "const {tracker} = await import('@openreplay/tracker');"
            "return {session, info: tracker.getSessionInfo()};",
            shop,
        )
        session_id = int(result["session"]["sessionID"])
        assert session_start_ms(session_id) == result["info"]["timestamp"]
        assert abs(result["info"]["timestamp"] - time.time() * 1000) < 60_000

    def test_check_cors_says_allowed(self, frontend: FrontendServer, app: App) -> None:
        """check-cors agrees with the browser on the example: the header is allowed (exit 0)."""
        code, out = run_check_cors(f"{app.url}/checkout", frontend.origin)
        assert code == 0, out
        assert f"allowed: the browser sends {TRACKER_HEADER}" in out


class TestReplayLinkDirect:
    def test_the_python_exporter_writes_the_same_link(
        self,
        browser: Browser,
        frontend: FrontendServer,
        ingest: StandInIngest,
        accounts: Accounts,
        reader: Elasticsearch,
    ) -> None:
        """No collector: the app writes the documents itself, each with its replay link opened at the error."""
        env = {
            **accounts.basic_env(),
            "OTEL_LOGS_EXPORTER": "openreplay_elasticsearch",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_OPENREPLAY_REPLAY_URL": REPLAY_URL,
            "SHOP_FRONTEND_ORIGINS": frontend.origin,
        }
        with App("flask", env) as app:
            shop = open_shop(browser, frontend, app.url)
            result = browser.run(PAY_BOTH, shop)
            session_id = result["session"]["sessionID"]
            assert (result["fetch"], result["xhr"]) == (402, 402)
            docs = wait_for(reader, session_id, 2)
        assert len(docs) == 2
        for doc in docs:
            assert_contract(doc, service="flask-shop", token=result["session"]["sessionToken"], session_id=session_id)
        assert_replay_links(docs, ingest, session_id, result["sentAt"])


class TestTokenUrlMatcher:
    def test_third_party_gets_no_token_with_the_matcher(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest
    ) -> None:
        """The shop's own API gets the token; a third party called by the same page gets no header (no preflight)."""
        with RecordingAPI("shop-api") as own, RecordingAPI("third-party") as third:
            shop = open_shop(browser, frontend, own.origin)
            result = browser.run(
                START + "await shop.pay(); await shop.payLegacy();"
                "await fetch(arguments[1] + '/pixel');"
                "await new Promise((done) => { const x = new XMLHttpRequest(); x.open('GET', arguments[1] + '/pixel');"
                " x.onloadend = done; x.send(); });"
                "return session;",
                shop,
                third.origin,
            )
            token = result["sessionToken"]
            assert [r.headers.get(HEADER) for r in own.received("GET")] == [token, token]
            assert len(third.received("GET")) == 2
            assert [r.headers.get(HEADER) for r in third.received("GET")] == [None, None]
            assert third.received("OPTIONS") == []

    def test_without_the_matcher_third_parties_get_the_token(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest
    ) -> None:
        """Configured without ``tokenUrlMatcher``, the tracker sends the token to every origin."""
        with RecordingAPI("third-party") as third:
            browser.open(f"{frontend.origin}/blank.html")
            result = browser.run(
                "const {tracker} = await import(arguments[0]);"
                "tracker.configure({projectKey: arguments[1], ingestPoint: arguments[2], __DISABLE_SECURE_MODE: true,"
                " network: {sessionTokenHeader: true}});"
                "const session = await tracker.start();"
                "await fetch(arguments[3] + '/pixel');"
                "await new Promise((done) => { const x = new XMLHttpRequest(); x.open('GET', arguments[3] + '/pixel');"
                " x.onloadend = done; x.send(); });"
                "return session;",
                f"{frontend.origin}/node_modules/@openreplay/tracker/dist/lib/entry.js",
                PROJECT_KEY,
                ingest.url,
                third.origin,
            )
            assert result["success"] is True, result
            assert [r.headers.get(HEADER) for r in third.received("GET")] == [result["sessionToken"]] * 2
            assert third.received("OPTIONS")  # and every such call costs a preflight


class TestRefusedPreflight:
    def test_the_request_never_leaves_the_browser_and_check_cors_says_so(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest
    ) -> None:
        """A backend allowing only Content-Type: the preflight arrives, the request never; both tools agree."""
        with RecordingAPI("refusing-api", allow_headers="Content-Type") as api:
            shop = open_shop(browser, frontend, api.origin)
            result = browser.run(PAY_BOTH, shop)
            assert result["session"]["success"] is True
            assert result["fetch"] == {"error": "Failed to fetch"}
            assert result["xhr"] == 0
            preflights = api.received("OPTIONS")
            assert preflights
            assert all(p.headers["access-control-request-headers"] == HEADER for p in preflights)
            assert api.received("GET") == []
            errors = cors_errors(browser)
            assert any(
                f"Request header field {HEADER} is not allowed by Access-Control-Allow-Headers" in e for e in errors
            )

            verdict = check(f"{api.origin}/checkout", frontend.origin)
            assert verdict.exit_code == ExitCode.REFUSED
            assert verdict.refused_headers == [TRACKER_HEADER]
            code, out = run_check_cors(f"{api.origin}/checkout", frontend.origin)
            assert code == 1
            assert "add: Access-Control-Allow-Headers: Content-Type, X-OpenReplay-SessionToken" in out


class TestTrackerNotStarted:
    def test_requests_go_without_the_header_and_nothing_breaks(
        self, browser: Browser, frontend: FrontendServer, ingest: StandInIngest
    ) -> None:
        """The ingest refuses the start (unknown project): calls go out plain, no preflight, nothing fails."""
        with RecordingAPI("shop-api") as api:
            shop = open_shop(browser, frontend, api.origin, projectKey="not-a-project")
            before = len(ingest.log.started)
            result = browser.run(
                PAY_BOTH.replace(
                    "return {",
                    "const {tracker} = await import('@openreplay/tracker');"
                    "return {id: tracker.getSessionID(), token: tracker.getSessionToken(), ",
                ),
                shop,
            )
            assert result["session"]["success"] is False
            assert "404" in result["session"]["reason"]
            assert (result["fetch"], result["xhr"]) == (200, 200)
            assert (result["id"], result["token"]) in {(None, None), ("", None), (None, ""), ("", "")}
            assert [r.headers.get(HEADER) for r in api.received("GET")] == [None, None]
            assert api.received("OPTIONS") == []
            assert len(ingest.log.started) == before
            assert not cors_errors(browser)
