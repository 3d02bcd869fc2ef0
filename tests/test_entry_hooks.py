"""Entry hooks: Falcon's unhandled exceptions logged once; servers that log their own are left alone.

Falcon runs in-process through its own test client (``falcon.testing``), with the real SDK; Django's
ASGI hook needs a configured Django, so it is tested end to end (``tests/test_examples_e2e.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import falcon
import falcon.testing
import pytest
from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from otel_openreplay import configure
from otel_openreplay.entry_hooks import SERVERS_LOGGING_UNHANDLED
from otel_openreplay.propagator import OpenReplayPropagator
from tests.conftest import LogPipeline, otel_logging_handler

log = logging.getLogger("shop.entry_hooks")


@pytest.fixture
def wired(pipeline: LogPipeline) -> Iterator[tuple[LogPipeline, Any]]:
    tracer_provider = TracerProvider()
    wiring = configure(logger_provider=pipeline.provider, tracer_provider=tracer_provider)
    handler = otel_logging_handler(pipeline.provider)
    root = logging.getLogger()
    root.addHandler(handler)
    yield pipeline, wiring
    root.removeHandler(handler)
    wiring.undo()


class Crash:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("inventory service timed out")


class LoggedCrash:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            raise RuntimeError("logged by the app")
        except RuntimeError:
            log.exception("checkout failed")
            raise


def shop() -> falcon.App:
    app = falcon.App()
    app.add_route("/crash", Crash())
    app.add_route("/logged", LoggedCrash())
    return app


def get(app: falcon.App, path: str, session_id: str) -> falcon.testing.Result:
    """A request whose session is current, as the WSGI instrumentation makes it around the app."""
    token = context.attach(OpenReplayPropagator().extract({"openReplaySession.id": session_id}))
    try:
        return falcon.testing.TestClient(app).simulate_get(path)
    finally:
        context.detach(token)


class TestFalcon:
    def test_unhandled_exception_is_logged_once_with_its_session(self, wired: tuple[LogPipeline, Any]) -> None:
        """Falcon writes it only to wsgi.errors: one ERROR record, tagged, with the traceback."""
        pipeline, _ = wired
        assert get(shop(), "/crash", "31").status_code == 500
        (record,) = pipeline.records()
        assert record.body == "[openReplaySession.id=31] Unhandled exception in GET /crash"
        assert record.attributes["exception.type"] == "RuntimeError"
        assert "Traceback (most recent call last)" in record.attributes["exception.stacktrace"]

    def test_an_exception_the_app_logged_is_not_logged_again(self, wired: tuple[LogPipeline, Any]) -> None:
        """The resource logged it before it escaped: that record alone."""
        pipeline, _ = wired
        assert get(shop(), "/logged", "32").status_code == 500
        assert [r.body for r in pipeline.records()] == ["[openReplaySession.id=32] checkout failed"]

    def test_the_apps_own_error_handler_replaces_the_hook(self, wired: tuple[LogPipeline, Any]) -> None:
        """An app that handles Exception itself (and logs) gets its record only."""
        pipeline, _ = wired
        app = shop()

        def handle(req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]) -> None:
            log.error("shop error: %s", error)
            resp.status = falcon.HTTP_503

        app.add_error_handler(Exception, handle)
        assert get(app, "/crash", "33").status_code == 503
        assert [r.body for r in pipeline.records()] == [
            "[openReplaySession.id=33] shop error: inventory service timed out"
        ]

    def test_undo_gives_falcon_its_handler_back(self, wired: tuple[LogPipeline, Any]) -> None:
        """After undo(), Falcon's error path is its own: nothing is logged."""
        pipeline, wiring = wired
        wiring.undo()
        assert get(shop(), "/crash", "34").status_code == 500
        assert pipeline.records() == []

    def test_capture_off_leaves_falcon_alone(self, pipeline: LogPipeline) -> None:
        """capture_exceptions=False: the Falcon hook is not installed."""
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        handler = otel_logging_handler(pipeline.provider)
        logging.getLogger().addHandler(handler)
        try:
            assert get(shop(), "/crash", "35").status_code == 500
            assert pipeline.records() == []
        finally:
            logging.getLogger().removeHandler(handler)
            wiring.undo()


class TestServersThatLogTheirOwn:
    @pytest.mark.parametrize("scope", sorted(SERVERS_LOGGING_UNHANDLED))
    def test_their_own_record_is_the_only_one_and_is_tagged(self, wired: tuple[LogPipeline, Any], scope: str) -> None:
        """aiohttp and Tornado log the exception right after their span records it: not reported twice."""
        pipeline, wiring = wired
        tracer = wiring._providers[-1].get_tracer(scope)
        ctx = OpenReplayPropagator().extract({"openReplaySession.id": "41"})
        try:
            with tracer.start_as_current_span("GET /crash", context=ctx, kind=SpanKind.SERVER):
                raise RuntimeError("inventory service timed out")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("Error handling request")  # after the span, no context
        (record,) = pipeline.records()
        assert record.body == "[openReplaySession.id=41] Error handling request"
        assert record.attributes["exception.type"] == "RuntimeError"
