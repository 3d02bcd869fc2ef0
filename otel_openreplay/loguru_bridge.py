"""loguru's records reach OpenTelemetry, once each, in every one of loguru's documented set-ups.

loguru does not use ``logging``, so OpenTelemetry's ``LoggingHandler`` never sees its records.
:func:`install` (called by :func:`otel_openreplay.configure`, and so by ``opentelemetry-instrument``,
where loguru is installed and ``OTEL_OPENREPLAY_LOGURU`` is not ``false``) adds one sink to loguru,
the bridge, when the application imports loguru (nothing is imported before). The bridge emits each
loguru record into the OpenTelemetry ``Logger`` named after the record's module: body = the formatted
message (``record["message"]``), the severity of :func:`severity_for`, loguru's own time, the values
bound with ``bind()``/``contextualize()`` as attributes, and an exception (``logger.exception``,
``opt(exception=...)``) as ``exception.type``/``.message``/``.stacktrace``, exactly as
OpenTelemetry's ``LoggingHandler`` writes them (so the document's
``message`` carries the traceback). ``code.*`` attributes are added when
``OTEL_PYTHON_LOG_CODE_ATTRIBUTES=true``, as that handler does.

Why straight into the ``Logger`` and not through a ``logging.LogRecord`` and OpenTelemetry's
``LoggingHandler``: the handler maps levels with ``logging``'s table, where loguru's TRACE (5) has no
severity at all; it needs a handler on hand (none exists where instrumentation-logging is not
installed, or after the app emptied the root logger); and its level and filters are not loguru's. The
attributes it writes are few and documented, and are written here the same way.

Exactly once, set-up by set-up:

* **loguru alone**: the bridge is the only road.
* **InterceptHandler** (``logging`` → loguru, with or without ``force=True``): the bridge sees a
  loguru record logged while ``logging`` handles a record R (a ``logging.Handler.handle`` frame is on
  the stack). If R reaches an OpenTelemetry handler anyway (one on its logger or a parent it
  propagates to: under ``opentelemetry-instrument``, instrumentation-logging keeps its handler on the
  root logger through ``basicConfig(force=True)``), the bridge leaves R to it; otherwise (the app
  replaced the root logger's handlers, or logs without propagation into an InterceptHandler) the
  bridge hands R itself to an OpenTelemetry handler, so the frameworks' records keep their logger
  name, attributes and exception, once.
* **PropagateHandler** (loguru → ``logging``): the bridge exports the loguru record; the copy that
  loguru's ``StandardSink`` makes for ``logging`` is dropped at OpenTelemetry's handler
  (:mod:`otel_openreplay.handler_gate`) when the bridge took its level.

Context: the bridge's sink is synchronous (its own ``enqueue=False``, whatever the app's sinks use),
so it runs in the logging call and the record gets the caller's context (the session of the request,
thread or task that logged); only the export is batched in the background by the SDK. Its level is
loguru's default sink level (``LOGURU_LEVEL``, default DEBUG). ``logger.remove()`` (all handlers, as
apps do to drop loguru's default stderr sink) and ``logger.configure(handlers=...)`` keep it: it is
added again at once; ``logger.remove(<its id>)`` removes it for good.

It must never import loguru where it is not installed, raise into loguru or the application (a
failure is logged at DEBUG), or export a record twice.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from time import time_ns
from types import FrameType
from typing import Any

import wrapt
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger
from opentelemetry.context import get_current

from otel_openreplay import handler_gate
from otel_openreplay.celery_logging import is_otel_handler
from otel_openreplay.session import SESSION_ID_KEY, TOKEN_KEY, remembered
from otel_openreplay.structlog_records import attribute_value

_logger = logging.getLogger(__name__)

Unhook = Callable[[], None]
"""Undoes what :func:`install` did (idempotent)."""

_HANDLE = logging.Handler.handle.__code__
_STACK_DEPTH = 12
"""How many frames above the sink (or the gated handler) are searched for ``logging``'s or loguru's own
(``logging.Handler.handle`` is the 7th above the sink under loguru's InterceptHandler; ``StandardSink.write``
the 6th above OpenTelemetry's ``emit`` under its PropagateHandler); every record pays this walk."""

_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # as OpenTelemetry's LoggingHandler names them
_DECADES = (
    (50, SeverityNumber.FATAL),
    (40, SeverityNumber.ERROR),
    (30, SeverityNumber.WARN),
    (20, SeverityNumber.INFO),
    (10, SeverityNumber.DEBUG),
)


def severity_for(levelno: int) -> SeverityNumber:
    """OpenTelemetry's severity number for a loguru level number (custom levels too).

    Below 10 (TRACE is 5): TRACE. From 10 on, ``logging``'s mapping (OpenTelemetry's
    ``std_to_otel``): the decade's severity (10 DEBUG, 20 INFO, 30 WARN, 40 ERROR, 50 FATAL) plus the
    units, at most 3 (SUCCESS, 25, is INFO4; 53 and above FATAL4).
    """
    for floor, severity in _DECADES:
        if levelno >= floor:
            return SeverityNumber(severity.value + min(levelno - floor, 3))
    return SeverityNumber.TRACE


_SEVERITIES = {levelno: severity_for(levelno) for levelno in range(60)}


class _State(threading.local):
    emitting = False
    last_forwarded: logging.LogRecord | None = None


class Bridge:
    """The bridge sink and what it needs; one per :func:`install`."""

    def __init__(self, logger_provider: Any = None) -> None:
        self._provider = logger_provider
        self._state = _State()
        self._code_attributes = os.environ.get("OTEL_PYTHON_LOG_CODE_ATTRIBUTES", "false").strip().lower() == "true"
        self._fallback: logging.Handler | None = None
        self._loggers: dict[str, Any] = {}
        self._seen: list[logging.Handler] = []  # OpenTelemetry handlers once seen on the root logger
        level = os.environ.get("LOGURU_LEVEL", "DEBUG").strip()
        self.level: str | int = int(level) if level.isdigit() else level
        self.levelno = 0
        self.standard_sink_write = _standard_sink_write()
        self.handler_id: int | None = None
        self.remember_root_handlers()

    # -- the sink ---------------------------------------------------------------------------------------

    def sink(self, message: Any) -> None:
        """loguru calls this with each record (a ``Message``: a ``str`` with ``.record``); never raises."""
        state = self._state
        if state.emitting:  # a record logged while we emit (the SDK's own warnings): never a loop
            return
        state.emitting = True
        try:
            handled = _handled_stdlib_record()
            if handled is not None:
                self._forward(handled)
            else:
                self._emit(message.record)
        except Exception:
            _logger.debug("otel-openreplay: could not export a loguru record", exc_info=True)
        finally:
            state.emitting = False

    def _emit(self, record: dict[str, Any]) -> None:
        level = record["level"]
        attributes: dict[str, Any] = {}
        for key, value in record["extra"].items():
            attributes[str(key)] = attribute_value(value)
        exception = record["exception"]
        if exception is not None and exception.type is not None:
            exc_type, value, tb = exception.type, exception.value, exception.traceback
            attributes["exception.type"] = exc_type.__name__
            if value is not None and value.args:
                attributes["exception.message"] = str(value.args[0])
            if tb is not None:
                attributes["exception.stacktrace"] = "".join(traceback.format_exception(exc_type, value, tb))
            session = remembered(value) if value is not None else None  # logged after its request ended
            if session is not None and TOKEN_KEY not in attributes and SESSION_ID_KEY not in attributes:
                if session.token is not None:
                    attributes[TOKEN_KEY] = session.token
                if session.id is not None:
                    attributes[SESSION_ID_KEY] = session.id
        if self._code_attributes:
            attributes["code.file.path"] = record["file"].path
            attributes["code.function.name"] = record["function"]
            attributes["code.line.number"] = record["line"]
        moment = record["time"]
        name = record["name"] or "loguru"
        otel_logger = self._loggers.get(name)
        if otel_logger is None:  # one per module, as logging has one per name (a proxy until a provider is set)
            otel_logger = self._loggers[name] = get_logger(name, logger_provider=self._provider)
        otel_logger.emit(
            LogRecord(
                timestamp=int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000,
                observed_timestamp=time_ns(),
                context=get_current(),
                severity_text=_SEVERITY_TEXT.get(level.name, level.name),
                severity_number=_SEVERITIES.get(level.no) or severity_for(level.no),
                body=record["message"],
                attributes=attributes,
            )
        )

    def _forward(self, record: logging.LogRecord) -> None:
        """A ``logging`` record routed into loguru: left to an OpenTelemetry handler on its way, else handed to one."""
        if _reaches_otel_handler(record):
            return
        state = self._state
        if state.last_forwarded is record:  # routed into loguru twice (two InterceptHandlers)
            return
        state.last_forwarded = record
        handler = self._stdlib_handler()
        if handler is not None:
            handler.handle(record)

    def _stdlib_handler(self) -> logging.Handler | None:
        self.remember_root_handlers()
        if self._seen:
            return self._seen[0]
        if self._fallback is None:
            try:
                from opentelemetry.instrumentation.logging.handler import LoggingHandler
            except ImportError:  # instrumentation-logging < 0.61b0: the SDK's own handler
                from opentelemetry.sdk._logs import LoggingHandler  # type: ignore[assignment]
            self._fallback = LoggingHandler(logger_provider=self._provider)
        return self._fallback

    def remember_root_handlers(self) -> None:
        """Keep the OpenTelemetry handlers on the root logger now, for records whose own road lost them."""
        found = [handler for handler in logging.getLogger().handlers if is_otel_handler(handler)]
        if found:
            self._seen = found

    # -- the gate: loguru's copies for ``logging`` ------------------------------------------------------

    def drop_loguru_copy(self, record: logging.LogRecord) -> logging.LogRecord | None:
        """``None`` for the ``logging`` copy of a loguru record the bridge exported itself, else ``record``."""
        if "extra" not in vars(record) or self.handler_id is None or record.levelno < self.levelno:
            return record
        return None if _made_by(self.standard_sink_write) else record


def _handled_stdlib_record() -> logging.LogRecord | None:
    """The ``logging`` record being handled further up this thread's stack (an InterceptHandler's), if any."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return None
        if frame.f_code is _HANDLE:
            record = frame.f_locals.get("record")
            return record if isinstance(record, logging.LogRecord) else None
        frame = frame.f_back
    return None


def _standard_sink_write() -> Any:
    """The code of loguru's ``StandardSink.write`` (its sink for a ``logging.Handler``), or ``None``."""
    try:
        from loguru._simple_sinks import StandardSink

        return StandardSink.write.__code__
    except Exception:  # a loguru release where it moved: no copy is recognised, the bridge stays exactly-once
        _logger.debug("otel-openreplay: loguru's StandardSink not found", exc_info=True)
        return None


def _made_by(code: Any) -> bool:
    """Whether ``code`` (loguru's ``StandardSink.write``) is making the record being emitted."""
    if code is None:
        return False
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return False
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def _reaches_otel_handler(record: logging.LogRecord) -> bool:
    """Whether ``logging`` delivers ``record`` to an OpenTelemetry handler from its logger (as ``callHandlers``)."""
    found = logging.Logger.manager.loggerDict.get(record.name)
    current: logging.Logger | None = found if isinstance(found, logging.Logger) else logging.getLogger()
    while current is not None:
        for handler in current.handlers:
            if is_otel_handler(handler) and record.levelno >= handler.level:
                return True
        current = current.parent if current.propagate else None
    return False


def install(logger_provider: Any = None) -> Unhook | None:
    """Add the bridge to loguru when the application imports it (now, if it has); ``None`` without loguru.

    Nothing is imported here: an application that has loguru installed but never imports it pays nothing.
    Returns what removes the bridge (or keeps it from being added).
    """
    if importlib.util.find_spec("loguru") is None:
        return None
    installed: list[Unhook] = []
    active = [True]

    def on_import(module: Any) -> None:
        try:
            if active[0] and not installed:
                unhook = _add_bridge(module.logger, logger_provider)
                if unhook is not None:
                    installed.append(unhook)
        except Exception:  # never into the application's import of loguru
            _logger.debug("otel-openreplay: could not add the loguru bridge", exc_info=True)

    wrapt.register_post_import_hook(on_import, "loguru")  # runs at once if loguru is imported already

    def unhook() -> None:
        active[0] = False
        while installed:
            installed.pop()()

    return unhook


def _add_bridge(logger: Any, logger_provider: Any) -> Unhook | None:
    bridge = Bridge(logger_provider)
    logger_class = type(logger)
    original_remove = logger_class.__dict__.get("remove")

    def otel_openreplay(message: Any) -> None:  # the name loguru shows for the sink: (id=1, ..., sink=otel_openreplay)
        bridge.sink(message)

    def add() -> None:
        bridge.handler_id = logger.add(
            otel_openreplay, level=bridge.level, format="{message}", enqueue=False, backtrace=False, diagnose=False
        )

    def keep_on_remove(wrapped: Callable[..., Any], _instance: Any, args: Any, kwargs: Any) -> Any:
        handler_id = args[0] if args else kwargs.get("handler_id")
        result = wrapped(*args, **kwargs)
        try:
            if handler_id is None and bridge.handler_id is not None:
                add()  # remove() took every handler, the bridge too: it stays
            elif handler_id is not None and handler_id == bridge.handler_id:
                bridge.handler_id = None  # removed by its id: on purpose
        except Exception:
            _logger.debug("otel-openreplay: could not keep the loguru bridge", exc_info=True)
        return result

    try:
        add()
        bridge.levelno = logger.level(bridge.level).no if isinstance(bridge.level, str) else bridge.level
    except Exception:  # e.g. a LOGURU_LEVEL loguru does not know: loguru itself would refuse it
        _logger.debug("otel-openreplay: could not add the loguru bridge", exc_info=True)
        return None
    if original_remove is not None:
        logger_class.remove = wrapt.FunctionWrapper(original_remove, keep_on_remove)
    remove_gate = handler_gate.add(bridge.drop_loguru_copy)

    def unhook() -> None:
        remove_gate()
        current = logger_class.__dict__.get("remove")
        if isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is original_remove:
            logger_class.remove = original_remove
        handler_id, bridge.handler_id = bridge.handler_id, None
        if handler_id is not None:
            with contextlib.suppress(ValueError):  # already gone
                logger.remove(handler_id)

    return unhook
