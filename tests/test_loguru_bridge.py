"""loguru_bridge: real loguru, the real SDK (batch processor) and OpenTelemetry's real logging handler.

Each of loguru's documented set-ups (alone, ``InterceptHandler``, ``PropagateHandler``) is built here
as loguru's documentation writes it; every test counts what the exporter received. The same set-ups
under ``opentelemetry-instrument`` in a real web app are in tests/test_loggers_e2e.py.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger
from opentelemetry._logs import SeverityNumber

from otel_openreplay import handler_gate, loguru_bridge
from otel_openreplay.layout import build_message
from otel_openreplay.loguru_bridge import severity_for
from otel_openreplay.session import session
from otel_openreplay.settings import Settings
from otel_openreplay.wiring import Wiring, configure
from tests.conftest import TOKEN, TOKEN_SESSION_ID, LogPipeline, otel_logging_handler


class InterceptHandler(logging.Handler):
    """loguru's documented recipe: ``logging`` records into loguru (README of loguru, "Entirely compatible")."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame:
            filename = frame.f_code.co_filename
            is_logging = filename == logging.__file__
            is_frozen = "importlib" in filename and "_bootstrap" in filename
            if depth > 0 and not (is_logging or is_frozen):
                break
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


class PropagateHandler(logging.Handler):
    """loguru's documented recipe: loguru records into ``logging``."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


@pytest.fixture
def root_state() -> Iterator[logging.Logger]:
    """The root logger and loguru as they were, after the test (handlers, level)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logger.remove()
    logger.add(sys.stderr)  # loguru's default sink again


@pytest.fixture
def otel_handler(pipeline: LogPipeline, root_state: logging.Logger) -> logging.Handler:
    """OpenTelemetry's handler on the root logger, as opentelemetry-instrument puts it there; root at DEBUG."""
    handler = otel_logging_handler(pipeline.provider)
    root_state.addHandler(handler)
    root_state.setLevel(logging.DEBUG)
    return handler


@pytest.fixture
def wired(pipeline: LogPipeline, otel_handler: logging.Handler) -> Iterator[Wiring]:
    wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False, span_attributes=False)
    yield wiring
    wiring.undo()


def bodies(pipeline: LogPipeline, needle: str) -> list[Any]:
    """The exported records whose body contains ``needle``."""
    return [record for record in pipeline.records() if needle in str(record.body)]


def scope_of(pipeline: LogPipeline, needle: str) -> str:
    """The instrumentation scope (the logger's name) of the one exported record whose body contains ``needle``."""
    pipeline.provider.force_flush()
    (data,) = [d for d in pipeline.exporter.get_finished_logs() if needle in str(d.log_record.body)]
    return str(data.instrumentation_scope.name)


class TestSeverityFor:
    @pytest.mark.parametrize(
        ("levelno", "expected"),
        [
            (5, SeverityNumber.TRACE),  # TRACE
            (0, SeverityNumber.TRACE),
            (9, SeverityNumber.TRACE),
            (10, SeverityNumber.DEBUG),  # DEBUG
            (12, SeverityNumber.DEBUG3),
            (19, SeverityNumber.DEBUG4),
            (20, SeverityNumber.INFO),  # INFO
            (25, SeverityNumber.INFO4),  # SUCCESS
            (30, SeverityNumber.WARN),  # WARNING
            (40, SeverityNumber.ERROR),  # ERROR
            (45, SeverityNumber.ERROR4),
            (50, SeverityNumber.FATAL),  # CRITICAL
            (53, SeverityNumber.FATAL4),
            (80, SeverityNumber.FATAL4),
        ],
    )
    def test_mapping(self, levelno: int, expected: SeverityNumber) -> None:
        """Each loguru level number (custom ones too) has the severity the README's table gives."""
        assert severity_for(levelno) is expected

    def test_from_ten_on_it_is_loggings_mapping(self) -> None:
        """From 10 on, the mapping is OpenTelemetry's own for ``logging`` levels, so both roads agree."""
        from opentelemetry.sdk._logs._internal import std_to_otel  # the SDK's handler's (contrib's is a copy)

        assert all(severity_for(levelno) == std_to_otel(levelno) for levelno in range(10, 100))


class TestLoguruAlone:
    def test_error_exported_once_with_message_attributes_and_time(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """One loguru error is one OTel record: formatted message, bound values as attributes, loguru's time."""
        logger.bind(order=1001, card="4242").error("payment declined: card {} expired", "4242")
        (record,) = bodies(pipeline, "payment declined")
        assert record.body == "payment declined: card 4242 expired"
        assert record.severity_number is SeverityNumber.ERROR
        assert record.severity_text == "ERROR"
        assert record.attributes["order"] == 1001
        assert record.attributes["card"] == "4242"
        assert record.timestamp is not None
        assert record.observed_timestamp >= record.timestamp
        assert scope_of(pipeline, "payment declined") == __name__  # the logging module's name, as loguru has it

    def test_every_level_and_a_custom_one(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """DEBUG to CRITICAL, SUCCESS and a custom level arrive with their severity; WARNING's text is WARN."""
        logger.level("AUDIT", no=45)
        try:
            for level in ("DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL", "AUDIT"):
                logger.log(level, "level {}", level)
            found = {str(r.body): (r.severity_number, r.severity_text) for r in bodies(pipeline, "level ")}
        finally:
            logger.remove()  # nothing refers to AUDIT any more
        assert found == {
            "level DEBUG": (SeverityNumber.DEBUG, "DEBUG"),
            "level INFO": (SeverityNumber.INFO, "INFO"),
            "level SUCCESS": (SeverityNumber.INFO4, "SUCCESS"),
            "level WARNING": (SeverityNumber.WARN, "WARN"),
            "level ERROR": (SeverityNumber.ERROR, "ERROR"),
            "level CRITICAL": (SeverityNumber.FATAL, "FATAL"),
            "level AUDIT": (SeverityNumber.ERROR4, "AUDIT"),
        }

    def test_trace_follows_loguru_level(
        self, pipeline: LogPipeline, otel_handler: logging.Handler, monkeypatch
    ) -> None:
        """TRACE is below the bridge's default level (loguru's DEBUG); ``LOGURU_LEVEL=TRACE`` lets it through."""
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        logger.trace("trace one")
        wiring.undo()
        monkeypatch.setenv("LOGURU_LEVEL", "TRACE")
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        logger.trace("trace two")
        wiring.undo()
        assert [(r.body, r.severity_number) for r in bodies(pipeline, "trace ")] == [
            ("trace two", SeverityNumber.TRACE)
        ]

    def test_exception_as_loggings_handler_writes_it(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """``logger.exception`` keeps its traceback as exception.* attributes; the document's message has it."""
        try:
            raise RuntimeError("inventory service timed out")
        except RuntimeError:
            logger.exception("checkout failed")
        (record,) = bodies(pipeline, "checkout failed")
        assert record.body == "checkout failed"
        assert record.attributes["exception.type"] == "RuntimeError"
        assert record.attributes["exception.message"] == "inventory service timed out"
        assert record.attributes["exception.stacktrace"].startswith("Traceback (most recent call last):")
        message = build_message(record.body, record.attributes)
        assert message.startswith("checkout failed\nTraceback (most recent call last):")
        assert message.endswith("RuntimeError: inventory service timed out")

    def test_tagged_with_the_callers_session(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """Inside a session the record gets the prefix and attributes; outside it, none."""
        with session(token=TOKEN):
            logger.error("card declined")
        logger.error("no session here")
        (tagged,) = bodies(pipeline, "card declined")
        assert (
            tagged.body == f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_SESSION_ID}] card declined"
        )
        assert tagged.attributes["openReplaySession.id"] == TOKEN_SESSION_ID
        (plain,) = bodies(pipeline, "no session here")
        assert plain.body == "no session here"
        assert "openReplaySession.id" not in plain.attributes

    def test_threads_keep_their_own_session(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """Two threads logging at once under different sessions: each record has its own thread's session."""
        barrier = threading.Barrier(2)

        def work(session_id: str) -> None:
            with session(session_id=session_id):
                barrier.wait()
                for n in range(20):
                    logger.error("work {} {}", session_id, n)

        threads = [threading.Thread(target=work, args=(sid,)) for sid in ("1001", "2002")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        records = bodies(pipeline, "work ")
        assert len(records) == 40
        for record in records:
            sid = str(record.body).split("work ")[1].split()[0]
            assert record.attributes["openReplaySession.id"] == sid

    def test_a_failure_never_reaches_the_app(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """A bound value whose ``str()`` raises: the app's call returns, the bridge logs at DEBUG and goes on."""

        class Hostile:
            def __str__(self) -> str:
                raise RuntimeError("no")

            __repr__ = __str__

        logger.remove(0) if 0 in logger._core.handlers else None  # loguru's stderr sink would fail on it too
        logger.bind(value=Hostile()).error("hostile")  # must not raise
        logger.error("after it")
        assert bodies(pipeline, "hostile") == []
        assert len(bodies(pipeline, "after it")) == 1

    def test_remove_all_keeps_the_bridge_remove_by_id_removes_it(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """``logger.remove()`` (as apps drop loguru's stderr sink) and ``configure(handlers=...)`` keep the
        bridge; removing it by its id removes it."""
        logger.remove()
        logger.error("after remove")
        logger.configure(handlers=[{"sink": sys.stderr, "format": "{message}"}])
        logger.error("after configure")
        assert len(bodies(pipeline, "after remove")) == 1
        assert len(bodies(pipeline, "after configure")) == 1
        bridge_ids = [i for i, h in logger._core.handlers.items() if repr(h).endswith("sink=otel_openreplay)")]
        assert len(bridge_ids) == 1
        logger.remove(bridge_ids[0])
        logger.remove()
        logger.error("bridge removed")
        assert bodies(pipeline, "bridge removed") == []


class TestInterceptHandler:
    def test_basicconfig_force_with_the_otel_handler_kept(self, wired: Wiring, pipeline: LogPipeline, otel_handler):
        """``basicConfig(handlers=[InterceptHandler()], force=True)`` as instrumentation-logging lets it run (its
        handler put back): a framework's ``logging`` error and the app's loguru error, each once."""
        root = logging.getLogger()
        root.handlers.remove(otel_handler)
        logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
        root.addHandler(otel_handler)
        self._log_both(pipeline)
        assert scope_of(pipeline, "framework failed") == "werkzeug"  # the logging road: its logger name

    def test_root_handlers_replaced_otel_handler_gone(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """``logging.root.handlers = [InterceptHandler()]`` removes OpenTelemetry's handler: the framework's
        record still arrives once, as the ``logging`` record it was (logger name, exception)."""
        logging.root.handlers = [InterceptHandler()]
        self._log_both(pipeline)
        (framework,) = bodies(pipeline, "framework failed")
        assert scope_of(pipeline, "framework failed") == "werkzeug"
        assert framework.attributes["exception.type"] == "ValueError"

    def test_non_propagating_logger_into_intercept(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """A logger that does not propagate, whose only handler is an InterceptHandler: once."""
        access = logging.getLogger("uvicorn.access.test")
        access.handlers = [InterceptHandler()]
        access.propagate = False
        try:
            access.error("GET /checkout 500")
        finally:
            access.handlers = []
            access.propagate = True
        assert len(bodies(pipeline, "GET /checkout 500")) == 1

    def test_without_force_under_plain_basicconfig(self, wired: Wiring, pipeline: LogPipeline, otel_handler) -> None:
        """InterceptHandler added beside OpenTelemetry's handler (no force): each record once."""
        logging.getLogger().addHandler(InterceptHandler())
        self._log_both(pipeline)

    @staticmethod
    def _log_both(pipeline: LogPipeline) -> None:
        try:
            raise ValueError("bad request line")
        except ValueError:
            logging.getLogger("werkzeug").exception("framework failed")
        logger.error("app failed")
        assert len(bodies(pipeline, "framework failed")) == 1
        assert len(bodies(pipeline, "app failed")) == 1


class TestPropagateHandler:
    @pytest.mark.parametrize("enqueue", [False, True])
    def test_each_record_once(self, wired: Wiring, pipeline: LogPipeline, enqueue: bool) -> None:
        """loguru → ``logging`` (also through loguru's queue): the bridge's record, not the copy, once."""
        logger.add(PropagateHandler(), format="{message}", enqueue=enqueue)
        try:
            raise KeyError("sku-1")
        except KeyError:
            logger.exception("stock lookup failed")
        logger.complete()
        (record,) = bodies(pipeline, "stock lookup failed")
        assert record.body == "stock lookup failed"  # the bridge's: loguru's copy has the traceback in its text
        assert record.attributes["exception.type"] == "KeyError"

    def test_a_level_below_the_bridge_comes_through_logging(self, wired: Wiring, pipeline: LogPipeline) -> None:
        """TRACE goes only to a PropagateHandler at TRACE (the bridge takes DEBUG and up): its copy is kept."""
        logger.add(PropagateHandler(), format="{message}", level="TRACE")
        logging.getLogger().setLevel(1)
        logger.trace("tracing the cart")
        assert len(bodies(pipeline, "tracing the cart")) == 1


class TestSetting:
    def test_off(self, pipeline: LogPipeline, otel_handler: logging.Handler) -> None:
        """``loguru=False`` (``OTEL_OPENREPLAY_LOGURU=false``): no bridge, loguru's records stay in loguru."""
        wiring = configure(logger_provider=pipeline.provider, loguru=False, capture_exceptions=False)
        try:
            logger.error("not bridged")
            assert bodies(pipeline, "not bridged") == []
        finally:
            wiring.undo()

    def test_env(self) -> None:
        """The variable is read as a boolean, default true."""
        assert Settings.from_env({}).loguru is True
        assert Settings.from_env({"OTEL_OPENREPLAY_LOGURU": "false"}).loguru is False


class TestInstall:
    def test_undo_removes_everything(self, pipeline: LogPipeline, otel_handler: logging.Handler) -> None:
        """Wiring.undo() removes the sink, gives ``remove`` back and takes the gate off the handler class."""
        handler_class = type(otel_handler)
        emit_before = handler_class.__dict__["emit"]
        remove_before = type(logger).__dict__["remove"]
        sinks_before = set(logger._core.handlers)
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        assert handler_class.__dict__["emit"] is not emit_before
        wiring.undo()
        assert handler_class.__dict__["emit"] is emit_before
        assert type(logger).__dict__["remove"] is remove_before
        assert set(logger._core.handlers) == sinks_before
        assert not handler_gate._rewrites

    def test_without_loguru_nothing_happens(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where loguru cannot be found, install() does nothing and imports nothing."""
        monkeypatch.setitem(sys.modules, "loguru", None)
        assert loguru_bridge.install() is None

    def test_loguru_imported_by_the_app_only(self) -> None:
        """configure() imports no loguru; the bridge is added when the app imports loguru, after configure()."""
        code = (
            "import logging, sys\n"
            "from opentelemetry.sdk._logs import LoggerProvider\n"
            "from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor, InMemoryLogRecordExporter\n"
            "from otel_openreplay.wiring import configure\n"
            "provider = LoggerProvider(); exporter = InMemoryLogRecordExporter()\n"
            "provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))\n"
            "configure(logger_provider=provider, capture_exceptions=False)\n"
            "print('loguru' in sys.modules)\n"
            "from loguru import logger\n"
            "logger.error('late import')\n"
            "print([d.log_record.body for d in exporter.get_finished_logs()])\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split("\n")[:2] == ["False", "['late import']"]
