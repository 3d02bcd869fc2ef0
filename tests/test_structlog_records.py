"""structlog_records: real structlog set-ups, the real SDK and OpenTelemetry's real logging handler.

The native set-up (structlog's default configuration) and the ``logging`` one (``LoggerFactory`` +
``ProcessorFormatter``, as structlog's documentation writes it) are each run with and without contrib's
``opentelemetry-instrumentation-structlog``; every test counts what the exporter received. The same
set-ups under ``opentelemetry-instrument`` in a real web app are in tests/test_loggers_e2e.py.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from otel_openreplay import structlog_records
from otel_openreplay.layout import build_message
from otel_openreplay.session import session
from otel_openreplay.structlog_records import event_record, exported_by_logging
from otel_openreplay.wiring import Wiring, configure
from tests.conftest import TOKEN, TOKEN_SESSION_ID, LogPipeline, otel_logging_handler

STDLIB_PROCESSORS = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.stdlib.PositionalArgumentsFormatter(),
    structlog.processors.TimeStamper(fmt="iso"),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.UnicodeDecoder(),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]
"""structlog's documented chain for ``logging`` ("Rendering using structlog-based formatters within logging")."""


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The root logger as the app sets it up for structlog: a console handler with ProcessorFormatter, INFO."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ]
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


@pytest.fixture
def otel_handler(pipeline: LogPipeline, console: io.StringIO) -> logging.Handler:
    """OpenTelemetry's handler on the root logger, as opentelemetry-instrument puts it there."""
    handler = otel_logging_handler(pipeline.provider)
    logging.getLogger().addHandler(handler)
    return handler


@pytest.fixture
def wired(pipeline: LogPipeline, otel_handler: logging.Handler) -> Iterator[Wiring]:
    wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False, span_attributes=False)
    yield wiring
    wiring.undo()


@pytest.fixture
def contrib(pipeline: LogPipeline) -> Iterator[Any]:
    """contrib's structlog instrumentation, instrumented as opentelemetry-instrument does (not on the floor cell:
    its only release needs contrib 0.66b1)."""
    module = pytest.importorskip("opentelemetry.instrumentation.structlog")
    instrumentor = module.StructlogInstrumentor()
    instrumentor.instrument(logger_provider=pipeline.provider)
    yield module
    instrumentor.uninstrument()


def stdlib_setup() -> None:
    structlog.configure(
        processors=STDLIB_PROCESSORS,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def exported(pipeline: LogPipeline, needle: str) -> list[Any]:
    return [record for record in pipeline.records() if needle in str(record.body)]


def log_error_and_exception(name: str = "shop.checkout") -> None:
    log = structlog.get_logger(name)
    log.error("payment declined", card="4242", amount=3.5)
    try:
        raise RuntimeError("inventory service timed out")
    except RuntimeError:
        log.exception("checkout crashed")


class TestEventRecord:
    def wrapped(self, event_dict: dict[str, Any]) -> logging.LogRecord:
        """A record as ``wrap_for_formatter`` has ``logging`` make it."""
        return logging.getLogger("shop").makeRecord(
            "shop", logging.ERROR, __file__, 1, event_dict, (), None, extra={"_logger": object(), "_name": "error"}
        )

    def test_event_becomes_the_message_keys_attributes(self) -> None:
        """The event is the message; other keys are attributes; structlog's own keys are not; the original stays."""
        event_dict = {"event": "payment declined", "card": "4242", "level": "error", "timestamp": "t", "n": 3}
        original = self.wrapped(event_dict)
        copy = event_record(original)
        assert copy is not original
        assert copy.getMessage() == "payment declined"
        assert (copy.card, copy.n) == ("4242", 3)  # type: ignore[attr-defined]
        assert not hasattr(copy, "_logger")
        assert not hasattr(copy, "_name")
        assert not hasattr(copy, "timestamp")
        assert copy.levelname == "ERROR"
        assert original.msg is event_dict
        assert hasattr(original, "_logger")

    def test_exc_info_forms(self) -> None:
        """``exc_info`` as True (the current exception), an exception or a tuple becomes the record's exception."""
        try:
            raise KeyError("sku")
        except KeyError as error:
            current = event_record(self.wrapped({"event": "a", "exc_info": True}))
            given = event_record(self.wrapped({"event": "b", "exc_info": error}))
            as_tuple = event_record(self.wrapped({"event": "c", "exc_info": sys.exc_info()}))
        for record in (current, given, as_tuple):
            assert record.exc_info is not None
            assert record.exc_info[0] is KeyError
        assert event_record(self.wrapped({"event": "d", "exc_info": True})).exc_info is None  # none current

    def test_rendered_exception_is_the_stacktrace(self) -> None:
        """A traceback already rendered by ``format_exc_info`` becomes ``exception.stacktrace``."""
        copy = event_record(self.wrapped({"event": "a", "exception": "Traceback ...\nKeyError: 'sku'"}))
        assert vars(copy)["exception.stacktrace"] == "Traceback ...\nKeyError: 'sku'"

    def test_record_fields_and_odd_values(self) -> None:
        """A key named like a record field is left out; a value OpenTelemetry cannot take is its ``str()``."""
        copy = event_record(self.wrapped({"event": 42, "name": "forged", "when": 1.5j, "tags": ["a"]}))
        assert copy.name == "shop"
        assert copy.getMessage() == "42"
        assert copy.when == "1.5j"
        assert copy.tags == "['a']"

    def test_other_records_untouched(self) -> None:
        """A plain record, or a dict message without structlog's marks, is passed through as it is."""
        plain = logging.makeLogRecord({"msg": "hello %s", "args": ("x",)})
        foreign_dict = logging.makeLogRecord({"msg": {"event": "x"}})
        assert event_record(plain) is plain
        assert event_record(foreign_dict) is foreign_dict


class TestExportedByLogging:
    def test_decides_by_what_logging_will_deliver(self, otel_handler: logging.Handler) -> None:
        """True only for a ``logging.Logger`` enabled for the level with an OpenTelemetry handler on its way."""
        shop = logging.getLogger("shop.decide")
        assert exported_by_logging(shop, "error", {})
        assert exported_by_logging(shop, "exception", {})
        assert not exported_by_logging(shop, "debug", {})  # root is at INFO: logging drops it
        assert not exported_by_logging(structlog.PrintLogger(), "error", {})  # no logging road
        otel_handler.setLevel(logging.CRITICAL)
        assert not exported_by_logging(shop, "error", {})
        assert exported_by_logging(shop, "log", {"level": "critical"})
        otel_handler.setLevel(logging.NOTSET)
        shop.propagate = False
        try:
            assert not exported_by_logging(shop, "error", {})
        finally:
            shop.propagate = True


class TestThroughLogging:
    def test_without_contrib_once_with_the_event_as_message(self, wired: Wiring, pipeline: LogPipeline, console):
        """No contrib: each event once, message = event, keys as attributes, exception as exception.*."""
        stdlib_setup()
        log_error_and_exception()
        self.assert_once_each(pipeline)
        assert '"card": "4242"' in console.getvalue()  # the app's console output is what it was

    def test_with_contrib_once(self, contrib: Any, wired: Wiring, pipeline: LogPipeline, console) -> None:
        """contrib installed (its processor in the chain): still once each, through ``logging``."""
        stdlib_setup()
        assert any(isinstance(p, contrib.StructlogProcessor) for p in structlog.get_config()["processors"])
        log_error_and_exception()
        self.assert_once_each(pipeline)
        assert '"card": "4242"' in console.getvalue()

    def test_with_contrib_and_no_otel_handler_on_the_way(self, contrib: Any, wired: Wiring, pipeline: LogPipeline):
        """A logger whose records never reach OpenTelemetry's handler: contrib's processor emits them, once."""
        stdlib_setup()
        private = logging.getLogger("shop.private")
        private.propagate = False
        private.addHandler(logging.NullHandler())
        try:
            structlog.get_logger("shop.private").error("kept by contrib")
        finally:
            private.propagate = True
            private.handlers.clear()
        (record,) = exported(pipeline, "kept by contrib")
        assert record.body == "kept by contrib"

    def test_tagged_with_the_callers_session(self, contrib: Any, wired: Wiring, pipeline: LogPipeline) -> None:
        """An event logged in a session carries it (prefix and attributes)."""
        stdlib_setup()
        with session(token=TOKEN):
            structlog.get_logger("shop").error("card declined")
        (record,) = exported(pipeline, "card declined")
        assert record.body.endswith("] card declined")
        assert record.attributes["openReplaySession.id"] == TOKEN_SESSION_ID

    def test_render_to_log_kwargs(self, contrib: Any, wired: Wiring, pipeline: LogPipeline) -> None:
        """``render_to_log_kwargs`` as the last processor: once, the event as message, the keys as attributes."""
        structlog.configure(
            processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").error("refund failed", order=7)
        (record,) = exported(pipeline, "refund failed")
        assert record.body == "refund failed"
        assert record.attributes["order"] == 7

    @staticmethod
    def assert_once_each(pipeline: LogPipeline) -> None:
        (error,) = exported(pipeline, "payment declined")
        assert error.body == "payment declined"
        assert error.attributes["card"] == "4242"
        assert error.attributes["amount"] == 3.5
        assert error.attributes["logger"] == "shop.checkout"
        (crash,) = exported(pipeline, "checkout crashed")
        assert crash.body == "checkout crashed"
        assert crash.attributes["exception.type"] == "RuntimeError"
        assert build_message(crash.body, crash.attributes).endswith("RuntimeError: inventory service timed out")


class TestNative:
    def test_default_configuration_with_contrib_once(self, contrib: Any, wired: Wiring, pipeline: LogPipeline):
        """structlog's default configuration (PrintLogger) with contrib: once each, as contrib emits it."""
        log_error_and_exception()
        (error,) = exported(pipeline, "payment declined")
        assert error.body == "payment declined"
        assert error.attributes["card"] == "4242"
        (crash,) = exported(pipeline, "checkout crashed")
        assert crash.attributes["exception.type"] == "RuntimeError"

    def test_undo_gives_contrib_its_processor_back(self, contrib: Any, pipeline: LogPipeline, otel_handler) -> None:
        """configure() wraps contrib's processor; Wiring.undo() restores it."""
        before = contrib.StructlogProcessor.__dict__["__call__"]
        wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
        assert contrib.StructlogProcessor.__dict__["__call__"] is not before
        wiring.undo()
        assert contrib.StructlogProcessor.__dict__["__call__"] is before


def test_without_structlog_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where structlog cannot be found, install() does nothing."""
    monkeypatch.setitem(sys.modules, "structlog", None)
    assert structlog_records.install() is None


def test_structlog_imported_by_the_app_only() -> None:
    """configure() imports no structlog; once the app imports it, its ``logging`` events arrive as events."""
    code = (
        "import logging, sys\n"
        "from opentelemetry.sdk._logs import LoggerProvider\n"
        "from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor, InMemoryLogRecordExporter\n"
        "from opentelemetry.sdk._logs import LoggingHandler\n"
        "from otel_openreplay.wiring import configure\n"
        "provider = LoggerProvider(); exporter = InMemoryLogRecordExporter()\n"
        "provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))\n"
        "logging.getLogger().addHandler(LoggingHandler(logger_provider=provider))\n"
        "configure(logger_provider=provider, capture_exceptions=False)\n"
        "print('structlog' in sys.modules)\n"
        "import structlog\n"
        "structlog.configure(processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],\n"
        "                    logger_factory=structlog.stdlib.LoggerFactory())\n"
        "structlog.get_logger('shop').error('late import', order=7)\n"
        "print([(d.log_record.body, d.log_record.attributes['order']) for d in exporter.get_finished_logs()])\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "[('late import', 7)]"]
