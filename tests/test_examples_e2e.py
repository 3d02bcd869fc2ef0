"""End to end: the example apps under ``opentelemetry-instrument`` behind real servers.

Each app runs as users run it (gunicorn for Flask, Django, Falcon and Pyramid; uvicorn for FastAPI,
Starlette and Django's ASGI handler; aiohttp's and Tornado's own servers) with the console exporter;
tests send real HTTP requests and read what the exporter printed. otel-openreplay is turned on by its
entry points alone: no setting, no code in the apps.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.apps import ROOT, App, prefixed_by
from tests.conftest import TOKEN, TOKEN_SESSION_ID

pytestmark = pytest.mark.e2e

_ids = itertools.count(880001)


def new_id() -> str:
    """A fresh session id per request, so each record is attributable to one request."""
    return str(next(_ids))


KINDS = ["flask", "fastapi", "django", "django-asgi", "starlette", "aiohttp", "falcon", "pyramid", "tornado"]
"""Every example app (``tests/apps.py`` says how each is served)."""

TASK_KINDS = ["fastapi", "django-asgi", "starlette", "aiohttp", "tornado"]
"""The examples whose ``/task`` route logs from an asyncio task."""


def errors_of(app: App, session_id: str, settle: float = 1.5) -> list[dict[str, object]]:
    """The ERROR records tagged with ``session_id``, read again ``settle`` s after the first appears
    (a server may log the same error once more after the response)."""
    app.wait_for_log(prefixed_by(session_id))
    time.sleep(settle)
    return [record for record in app.logs() if prefixed_by(session_id)(record)]


@pytest.fixture(scope="module", params=KINDS)
def app(request: pytest.FixtureRequest) -> Iterator[App]:
    with App(request.param) as running:
        yield running


class TestSessionInEveryRecord:
    @pytest.mark.parametrize(
        "header",
        ["X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token", "x-openreplay-sessiontoken"],
    )
    def test_token_headers(self, app: App, header: str) -> None:
        """Each token header spelling puts the whole prefix and both attributes on the handler's error."""
        token = f"{int(new_id()):x}.0.1dj3n1ak.sig"
        expected_id = str(int(token.split(".")[0], 36))
        assert app.get("/checkout", {header: token}).status_code == 402
        record = app.wait_for_log(prefixed_by(expected_id))
        assert record["body"] == (
            f"[openReplaySessionToken={token}] [openReplaySession.id={expected_id}] payment declined: card 4242 expired"
        )
        assert record["attributes"]["openReplaySessionToken"] == token
        assert record["attributes"]["openReplaySession.id"] == expected_id

    @pytest.mark.parametrize("header", ["openReplaySession.id", "OPENREPLAYSESSION.ID"])
    def test_session_id_header(self, app: App, header: str) -> None:
        """The ≥1.21 id header alone gives the id part."""
        session_id = new_id()
        app.get("/checkout", {header: session_id})
        record = app.wait_for_log(prefixed_by(session_id))
        assert record["body"] == f"[openReplaySession.id={session_id}] payment declined: card 4242 expired"

    def test_log_in_a_thread(self, app: App) -> None:
        """A thread started by the handler logs with the request's session."""
        session_id = new_id()
        app.get("/thread", {"openReplaySession.id": session_id})
        assert app.wait_for_log(prefixed_by(session_id))["body"].endswith("receipt rendering failed")

    def test_unhandled_exception(self, app: App) -> None:
        """An unhandled exception in the handler yields one ERROR record with the session and the traceback."""
        session_id = new_id()
        assert app.get("/crash", {"openReplaySession.id": session_id}).status_code == 500
        (record,) = errors_of(app, session_id)
        assert record["severity_text"] == "ERROR"
        assert record["attributes"]["exception.type"] == "RuntimeError"
        assert "inventory service timed out" in record["attributes"]["exception.stacktrace"]
        assert "Traceback (most recent call last)" in record["attributes"]["exception.stacktrace"]

    def test_interleaved_requests_keep_their_own_session(self, app: App) -> None:
        """Concurrent requests, each with its own session or none: every record carries its own request's."""
        ids = [new_id() for _ in range(6)]
        headers = [{"openReplaySession.id": session_id} for session_id in ids] + [{}] * 3
        before = len(app.logs())
        with ThreadPoolExecutor(len(headers)) as pool:
            answers = list(pool.map(lambda header: app.get("/thread", header).status_code, headers * 2))
        assert answers == [200] * len(answers)
        deadline = time.monotonic() + 10
        while len(self._thread_records(app, before)) < 2 * len(headers) and time.monotonic() < deadline:
            time.sleep(0.2)
        records = self._thread_records(app, before)
        assert len(records) == 2 * len(headers)
        for session_id in ids:  # its two requests' records, nobody else's
            assert len([r for r in records if prefixed_by(session_id)(r)]) == 2
        assert len([r for r in records if r["body"] == "receipt rendering failed"]) == 6  # the untagged ones

    @staticmethod
    def _thread_records(app: App, before: int) -> list[dict[str, object]]:
        return [r for r in app.logs()[before:] if str(r["body"]).endswith("receipt rendering failed")]

    @pytest.mark.parametrize("app", TASK_KINDS, indirect=True)
    def test_log_in_an_asyncio_task(self, app: App) -> None:
        """An asyncio task started by the handler logs with the request's session."""
        session_id = new_id()
        assert app.get("/task", {"openReplaySession.id": session_id}).status_code == 200
        record = app.wait_for_log(prefixed_by(session_id))
        assert record["body"].endswith("receipt rendering failed in a task")

    def test_no_header_no_prefix(self, app: App) -> None:
        """A request without a session header is logged untouched."""
        before = len(app.logs())
        app.get("/checkout")
        record = app.wait_for_log(lambda r: r["body"] == "payment declined: card 4242 expired")
        assert "openReplaySessionToken" not in (record["attributes"] or {})
        assert all("openReplaySession" not in str(r["body"]) for r in app.logs()[before:] if "session" in r)

    def test_hostile_header_never_forges_a_prefix(self, app: App) -> None:
        """A header trying to inject a prefix is dropped; the request is served normally."""
        response = app.get("/checkout", {"X-OpenReplay-SessionToken": "x] [openReplaySessionToken=forged"})
        assert response.status_code == 402
        app.wait_for_log(lambda r: r["body"] == "payment declined: card 4242 expired")
        assert not any("forged" in str(r["body"]) for r in app.logs())

    def test_server_span_carries_the_session(self, app: App) -> None:
        """The server span of a request with a session has the session attributes."""
        session_id = new_id()
        app.get("/checkout", {"openReplaySession.id": session_id})
        app.wait_for_log(prefixed_by(session_id))
        span = app.wait_for_span(
            lambda s: (
                s["kind"] == "SpanKind.SERVER" and (s.get("attributes") or {}).get("openReplaySession.id") == session_id
            )
        )
        assert "openReplaySessionToken" not in span["attributes"]  # only the id header came


class TestAcrossServices:
    def test_the_token_follows_an_http_call_to_a_second_app(self) -> None:
        """App A calls app B over HTTP: B's records carry A's session (inject, then extract)."""
        with App("flask") as front, App("fastapi") as back:
            response = front.get("/call", {"X-OpenReplay-SessionToken": TOKEN}, url=f"{back.url}/checkout")
            assert response.json() == {"downstream": 402}
            record = back.wait_for_log(prefixed_by(TOKEN_SESSION_ID))
            assert record["attributes"]["openReplaySessionToken"] == TOKEN

    @pytest.mark.parametrize("kind", ["aiohttp", "django-asgi"])
    def test_the_token_follows_a_call_from_an_async_framework(self, kind: str) -> None:
        """aiohttp (session found through its span) and Django ASGI (entry hook) pass the session on too."""
        with App(kind) as front, App("fastapi") as back:
            response = front.get("/call", {"X-OpenReplay-SessionToken": TOKEN}, url=f"{back.url}/checkout")
            assert response.json() == {"downstream": 402}
            record = back.wait_for_log(prefixed_by(TOKEN_SESSION_ID))
            assert record["attributes"]["openReplaySessionToken"] == TOKEN

    def test_propagate_false_keeps_the_token_in_the_first_app(self) -> None:
        """OTEL_OPENREPLAY_PROPAGATE=false: A still tags its records, B gets no session at all."""
        env = {"OTEL_OPENREPLAY_PROPAGATE": "false"}
        with App("flask", env) as front, App("fastapi") as back:
            front.get("/call", {"X-OpenReplay-SessionToken": TOKEN}, url=f"{back.url}/checkout")
            front.get("/checkout", {"X-OpenReplay-SessionToken": TOKEN})
            front.wait_for_log(prefixed_by(TOKEN_SESSION_ID))
            record = back.wait_for_log(lambda r: r["body"] == "payment declined: card 4242 expired")
            assert "openReplaySessionToken" not in (record["attributes"] or {})


class TestLoggingHandlers:
    def test_sdk_legacy_handler(self) -> None:
        """OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true (the SDK's older handler) works too."""
        env = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
        with App("flask", env) as flask_app:
            session_id = new_id()
            flask_app.get("/checkout", {"openReplaySession.id": session_id})
            record = flask_app.wait_for_log(prefixed_by(session_id))
            assert record["body"].endswith("payment declined: card 4242 expired")


class TestDjangoASGIWithoutTheASGIInstrumentation:
    """``[django]`` and uvicorn alone: Django's instrumentation skips every ASGI request, the entry hook
    still makes the session current in the async views (there is no span: trace id 0)."""

    def test_views_log_with_the_session(self) -> None:
        """The view's records, a task's, Django's own 500 record: tagged; a request without the header: not."""
        hide_asgi = {"PYTHONPATH": str(ROOT / "tests" / "fixtures" / "without_asgi_instrumentation")}
        with App("django-asgi", hide_asgi) as app:
            ids = [new_id() for _ in range(3)]
            assert app.get("/checkout", {"openReplaySession.id": ids[0]}).status_code == 402
            assert app.get("/task", {"openReplaySession.id": ids[1]}).status_code == 200
            assert app.get("/crash", {"openReplaySession.id": ids[2]}).status_code == 500
            assert app.get("/checkout").status_code == 402
            checkout = app.wait_for_log(prefixed_by(ids[0]))
            assert checkout["body"].endswith("payment declined: card 4242 expired")
            assert int(checkout["trace_id"], 16) == 0  # no span: the ASGI instrumentation really is missing
            assert app.wait_for_log(prefixed_by(ids[1]))["body"].endswith("receipt rendering failed in a task")
            (crash,) = errors_of(app, ids[2])
            assert crash["attributes"]["exception.type"] == "RuntimeError"
            untagged = app.wait_for_log(lambda r: r["body"] == "payment declined: card 4242 expired")
            assert "openReplaySession.id" not in (untagged["attributes"] or {})
