"""celery_logging: a real Celery app sets logging up as its worker does; OpenTelemetry's handler survives it.

No worker runs here: ``app.log.setup_logging_subsystem`` is the very call ``celery worker`` makes (it
empties the root logger under the default ``worker_hijack_root_logger=True``, then sends
``after_setup_logger`` and ``after_setup_task_logger``), and ``celeryd_init`` is sent as the worker
sends it. The worker itself, solo and prefork, is in tests/test_celery_e2e.py.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from celery.app.log import Logging
from celery.utils.log import get_task_logger
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_openreplay import celery_logging
from otel_openreplay.celery_logging import HandlerKeeper, is_otel_handler
from otel_openreplay.wiring import configure
from tests.conftest import LogPipeline, otel_logging_handler

_TOUCHED_LOGGERS = ("", "celery", "celery.task", "celery.redirected", "multiprocessing")


@pytest.fixture(autouse=True)
def _logging_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with Celery's logging not set up yet, and leaves logging as it found it."""
    saved = {}
    for name in _TOUCHED_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    environ = dict(os.environ)
    monkeypatch.setattr(Logging, "_setup", False)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture
def unhook() -> Iterator[list[celery_logging.Unhook]]:
    """Unhooks run after the test, so no receiver outlives it."""
    made: list[celery_logging.Unhook] = []
    yield made
    for undo in made:
        undo()


def install(unhook: list[celery_logging.Unhook]) -> None:
    undo = celery_logging.install()
    assert undo is not None
    unhook.append(undo)


def worker_logging_setup(app: Celery) -> None:
    """What ``celery worker`` does to logging at start-up (``Worker.setup_logging``), at INFO to stderr."""
    app.log.setup_logging_subsystem(loglevel=logging.INFO, logfile=None, colorize=False, hostname="test@host")


def otel_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [handler for handler in logger.handlers if is_otel_handler(handler)]


def bodies(pipeline: LogPipeline) -> list[str]:
    return [str(record.body) for record in pipeline.records()]


@pytest.fixture
def app() -> Celery:
    return Celery("shop", broker="memory://", set_as_current=False)


@pytest.fixture
def handler(pipeline: LogPipeline) -> Iterator[logging.Handler]:
    """OpenTelemetry's handler on the root logger, as ``opentelemetry-instrument`` puts it there."""
    made = otel_logging_handler(pipeline.provider)
    logging.getLogger().addHandler(made)
    yield made
    logging.getLogger().removeHandler(made)


class TestWithoutTheHook:
    def test_celery_removes_the_handler(self, app: Celery, handler: logging.Handler, pipeline: LogPipeline) -> None:
        """The defect this module exists for: after Celery's setup, no record reaches OpenTelemetry."""
        worker_logging_setup(app)
        assert handler not in logging.getLogger().handlers
        logging.getLogger("shop.receipts").error("lost")
        assert bodies(pipeline) == []


class TestInstall:
    def test_handler_is_back_after_celery_setup(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """The root logger's OTel handler is back after Celery's setup, and records reach it."""
        install(unhook)
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == [handler]
        logging.getLogger("shop.receipts").error("receipt mail bounced")
        assert bodies(pipeline) == ["receipt mail bounced"]

    def test_beat_setup_too(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """``celery beat`` sets logging up through ``app.log.setup`` (the worker's own path): the handler is back."""
        install(unhook)
        app.log.setup(logging.INFO, None, False, colorize=False)  # as celery.apps.beat.Beat.setup_logging
        assert otel_handlers(logging.getLogger()) == [handler]
        logging.getLogger("celery.beat").error("Message Error: Couldn't apply scheduled task")
        assert bodies(pipeline) == ["Message Error: Couldn't apply scheduled task"]

    def test_celery_console_handler_stays_first(
        self,
        app: Celery,
        handler: logging.Handler,
        capfd: pytest.CaptureFixture[str],
        unhook: list[celery_logging.Unhook],
    ) -> None:
        """Celery's own console handler is kept, ahead of the OTel one, and still prints the record."""
        install(unhook)
        worker_logging_setup(app)
        console, *rest = logging.getLogger().handlers
        assert type(console) is logging.StreamHandler
        assert rest == [handler]
        logging.getLogger("shop.receipts").error("printed by Celery")
        # Celery 5.3 formats the line as a task record ("ERROR/MainProcess] ???[???]: ..."), 5.4+ as a plain one.
        assert re.search(r"ERROR/MainProcess\] (\?\?\?\[\?\?\?\]: )?printed by Celery$", capfd.readouterr().err, re.M)

    def test_task_logger_records_are_exported_once(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """``get_task_logger`` loggers (under the non-propagating ``celery.task``) reach OTel, exactly once."""
        install(unhook)
        worker_logging_setup(app)
        assert logging.getLogger("celery.task").propagate == 0
        assert otel_handlers(logging.getLogger("celery.task")) == [handler]
        get_task_logger("shop.tasks").error("task failed")
        logging.getLogger("celery.app.trace").error("Task shop.charge_card[1] raised unexpected: RuntimeError()")
        assert bodies(pipeline) == ["task failed", "Task shop.charge_card[1] raised unexpected: RuntimeError()"]

    def test_sdk_handler_is_put_back_too(
        self, app: Celery, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """The SDK's older LoggingHandler (OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true) is kept too."""
        from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sdk_handler = SdkLoggingHandler(logger_provider=pipeline.provider)
        logging.getLogger().addHandler(sdk_handler)
        install(unhook)
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == [sdk_handler]
        logging.getLogger("shop").error("via the SDK handler")
        assert bodies(pipeline) == ["via the SDK handler"]

    @pytest.mark.parametrize("signal", ["import_modules", "celeryd_init"])
    def test_handler_added_after_install_is_seen_before_setup(
        self, app: Celery, pipeline: LogPipeline, unhook: list[celery_logging.Unhook], signal: str
    ) -> None:
        """A handler set up after install (another instrumentor, the app module) is remembered by the signals
        Celery sends before it sets logging up (a spawned pool child sends only ``import_modules``)."""
        install(unhook)
        late = otel_logging_handler(pipeline.provider)
        logging.getLogger().addHandler(late)
        if signal == "import_modules":
            app.loader.init_worker()  # sends import_modules, as the worker and each spawned child do
        else:
            signals.celeryd_init.send(sender="test@host", instance=None, conf=app.conf, options={})
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == [late]

    def test_other_handlers_stay_as_celery_leaves_them(
        self, app: Celery, handler: logging.Handler, unhook: list[celery_logging.Unhook]
    ) -> None:
        """Only OTel handlers come back: a user's own handler is removed by Celery as before."""
        own = logging.StreamHandler(sys.stderr)
        logging.getLogger().addHandler(own)
        install(unhook)
        worker_logging_setup(app)
        assert own not in logging.getLogger().handlers


class TestNeverTwice:
    def test_without_hijack_nothing_is_added(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """worker_hijack_root_logger=False keeps the handler; it is not added a second time."""
        app.conf.worker_hijack_root_logger = False
        install(unhook)
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == [handler]
        logging.getLogger("shop").error("once")
        assert bodies(pipeline) == ["once"]

    def test_signals_sent_again(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """The signals sent again (a second setup) and a second install add nothing."""
        install(unhook)
        install(unhook)
        worker_logging_setup(app)
        signals.after_setup_logger.send(sender=None, logger=logging.getLogger(), loglevel=logging.INFO)
        task_logger = logging.getLogger("celery.task")
        signals.after_setup_task_logger.send(sender=None, logger=task_logger, loglevel=logging.INFO)
        assert otel_handlers(logging.getLogger()) == [handler]
        assert otel_handlers(task_logger) == [handler]
        get_task_logger("shop.tasks").error("once")
        assert bodies(pipeline) == ["once"]

    def test_a_later_look_finding_none_keeps_the_earlier_handlers(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline, unhook: list[celery_logging.Unhook]
    ) -> None:
        """A signal that finds the root logger already emptied (a second ``celeryd_init``, a late import)
        does not forget the handlers seen before: Celery's setup still gets them back."""
        install(unhook)
        logging.getLogger().removeHandler(handler)
        signals.celeryd_init.send(sender="test@host", instance=None, conf=app.conf, options={})
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == [handler]
        logging.getLogger("shop.receipts").error("still exported")
        assert bodies(pipeline) == ["still exported"]

    def test_propagating_task_logger_gets_no_copy(self, handler: logging.Handler) -> None:
        """A task logger whose records already reach the root's handler is left alone."""
        keeper = HandlerKeeper()
        task_logger = logging.getLogger("celery.task")
        task_logger.propagate = True
        keeper.restore(logger=task_logger)
        assert otel_handlers(task_logger) == []


class TestChildExit:
    def test_worker_process_shutdown_exports_what_the_batch_holds(self, unhook: list[celery_logging.Unhook]) -> None:
        """A pool child's exit signal exports the records its batch processor still holds (os._exit skips atexit)."""
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000))
        logging.getLogger().addHandler(otel_logging_handler(provider))
        try:
            install(unhook)
            logging.getLogger("shop.tasks").error("logged just before the child exits")
            assert exporter.get_finished_logs() == ()
            signals.worker_process_shutdown.send(sender="test@host", pid=os.getpid(), exitcode=0)
            assert [str(data.log_record.body) for data in exporter.get_finished_logs()] == [
                "logged just before the child exits"
            ]
        finally:
            provider.shutdown()

    def test_worker_process_shutdown_exports_the_spans_too(
        self, unhook: list[celery_logging.Unhook], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The child's spans still in the batch span processor are exported at its exit as well."""
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=60_000))
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)  # the global one, as the SDK sets it
        try:
            install(unhook)
            with tracer_provider.get_tracer("shop").start_as_current_span("charge_card"):
                pass
            assert spans.get_finished_spans() == ()
            signals.worker_process_shutdown.send(sender="test@host", pid=os.getpid(), exitcode=0)
            assert [span.name for span in spans.get_finished_spans()] == ["charge_card"]
        finally:
            tracer_provider.shutdown()

    def test_a_stalled_export_does_not_hold_the_exit(
        self, unhook: list[celery_logging.Unhook], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A log export that never returns (the collector is down) holds the child's exit no longer than the
        bound, and the spans are exported all the same; a warning says what happened."""
        released = threading.Event()
        stalled = _StalledExporter(released)
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(stalled, schedule_delay_millis=60_000))
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=60_000))
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)
        monkeypatch.setattr(celery_logging, "FLUSH_TIMEOUT_SECONDS", 0.3)
        handler = otel_logging_handler(provider)
        logging.getLogger().addHandler(handler)
        try:
            install(unhook)
            logging.getLogger("shop.tasks").error("the collector is down")
            with tracer_provider.get_tracer("shop").start_as_current_span("charge_card"):
                pass
            exit_signal = threading.Thread(
                target=signals.worker_process_shutdown.send,
                kwargs={"sender": "test@host", "pid": os.getpid(), "exitcode": 0},
                daemon=True,
            )
            with caplog.at_level(logging.WARNING, logger="otel_openreplay.celery_logging"):
                exit_signal.start()
                exit_signal.join(10)
                assert not exit_signal.is_alive()  # returned although the log export is still stuck
            assert stalled.started.is_set()
            assert [span.name for span in spans.get_finished_spans()] == ["charge_card"]
            assert "not exported within 0.3 s" in caplog.text
        finally:
            released.set()
            logging.getLogger().removeHandler(handler)
            provider.shutdown()
            tracer_provider.shutdown()


class _StalledExporter(LogRecordExporter):
    """A log exporter whose export blocks until released, like one waiting on a collector that is down."""

    def __init__(self, released: threading.Event) -> None:
        self.started = threading.Event()
        self._released = released

    def export(self, batch: Any) -> LogRecordExportResult:
        self.started.set()
        self._released.wait(30)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self._released.set()


class TestNeverRaises:
    def test_failing_logger(self, handler: logging.Handler, caplog: pytest.LogCaptureFixture) -> None:
        """A logger that refuses the handler: the receiver logs at DEBUG, with the cause, and returns."""

        class Refusing(logging.Logger):
            def addHandler(self, hdlr: logging.Handler) -> None:
                raise RuntimeError("no handlers here")

        refusing = Refusing("refusing")
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_logging"):
            HandlerKeeper().restore(logger=refusing)
        (report,) = [r for r in caplog.records if r.name == "otel_openreplay.celery_logging"]
        assert report.levelno == logging.DEBUG
        assert report.getMessage() == "otel-openreplay: could not restore the OpenTelemetry logging handler"
        assert report.exc_info is not None
        assert str(report.exc_info[1]) == "no handlers here"
        assert refusing.handlers == []

    def test_unexpected_arguments(self, handler: logging.Handler) -> None:
        """Whatever Celery passes (no logger, extra keywords), the receivers return normally."""
        keeper = HandlerKeeper()
        keeper.remember(sender=None, signal=None, surprise=1)
        keeper.restore(logger=None, loglevel="INFO", surprise=1)
        assert otel_handlers(logging.getLogger()) == [handler]


class TestLifecycle:
    def test_configure_hooks_and_undo_unhooks(
        self, app: Celery, handler: logging.Handler, pipeline: LogPipeline
    ) -> None:
        """configure() (so the instrumentor too) hooks Celery; Wiring.undo() unhooks it."""
        wiring = configure(logger_provider=pipeline.provider, span_attributes=False, capture_exceptions=False)
        try:
            worker_logging_setup(app)
            assert otel_handlers(logging.getLogger()) == [handler]
        finally:
            wiring.undo()
        Logging._setup = False
        logging.getLogger().addHandler(handler)
        worker_logging_setup(app)
        assert otel_handlers(logging.getLogger()) == []

    def test_importing_the_package_imports_no_celery(self) -> None:
        """Celery is imported by configure() only, never by importing otel-openreplay's modules."""
        code = "import sys, otel_openreplay.wiring, otel_openreplay.instrumentor; print('celery' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        assert result.stdout.strip() == "False"

    def test_no_celery_no_import(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without Celery, install() does nothing and imports nothing."""
        monkeypatch.setitem(sys.modules, "celery", None)  # what find_spec and import see when it is absent
        assert celery_logging.install() is None


class TestIsOtelHandler:
    def test_both_handlers_and_subclasses(self, pipeline: LogPipeline) -> None:
        """Either package's LoggingHandler, or a subclass, counts; a plain handler does not."""
        from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sdk_handler = SdkLoggingHandler(logger_provider=pipeline.provider)
            instrumentation_handler = otel_logging_handler(pipeline.provider)

            class Mine(type(instrumentation_handler)):  # type: ignore[misc]
                pass

            assert is_otel_handler(Mine(logger_provider=pipeline.provider))
        assert is_otel_handler(sdk_handler)
        assert is_otel_handler(instrumentation_handler)
        assert not is_otel_handler(logging.StreamHandler())
