"""structlog events reach OpenTelemetry once each, with the event as the message, however structlog is set up.

structlog reaches OpenTelemetry by one of two roads:

* **natively**: contrib's ``opentelemetry-instrumentation-structlog`` (in the ``structlog`` extra)
  puts its ``StructlogProcessor`` into structlog's chain, just before the last processor (the
  renderer), also into every later ``structlog.configure(...)``. It emits each event that reaches it
  as an OTel record: message = ``event``, the other keys as attributes (``exc_info`` as
  ``exception.*``; a pre-rendered ``exception`` string as ``exception.stacktrace``), the caller's
  current context (the processor runs in the logging call), and a time only when a ``timestamp`` key
  is a number or a time-zone-aware ISO string (otherwise the record has none and its observed time,
  the same moment, is used);
* **through** ``logging`` (``structlog.stdlib.LoggerFactory``): the last processor hands the event to
  a ``logging.Logger``, whose record reaches OpenTelemetry's ``LoggingHandler`` like any other.

Both at once, the common production set-up, used to export every event twice. The rule here: an
event of a structlog logger that wraps a ``logging.Logger`` is exported by the ``logging`` road
whenever ``logging`` will deliver it to an OpenTelemetry handler (the logger is enabled for its level
and an OpenTelemetry handler with a level that lets it through is on the logger or a parent it
propagates to); contrib's processor skips exactly those events (:func:`install` wraps it with ``wrapt``
when its module is imported) and emits every other one as before. So each event leaves once, with or
without contrib, and the ``logging`` road keeps ``logging``'s logger names, levels and handler levels.

On the ``logging`` road, ``ProcessorFormatter.wrap_for_formatter`` (structlog's documented renderer
for ``logging``) makes the record's ``msg`` the event DICT: OpenTelemetry's handler would export
``str(event_dict)``. :func:`event_record` (a rewrite of :mod:`otel_openreplay.handler_gate`) gives the
handler a copy instead, with message = ``event``, the other keys as attributes (as contrib names them:
``level``, ``timestamp``, ``exc_info``, ``exception`` and structlog's own ``_``-keys are not
attributes; a key that is a ``LogRecord`` field, such as ``name``, is left out) and ``exc_info``
(``True``, an exception, or a tuple) as the record's exception, so ``exception.type``/``.message``/
``.stacktrace`` are set as for every ``logging`` record. ``render_to_log_kwargs`` needs nothing: it
already passes the event as ``msg`` and the keys as ``extra``. A renderer that makes a string
(``JSONRenderer``, ``ConsoleRenderer``) as the last processor of a ``logging`` set-up exports that
string as the message.

It must never import structlog where it is not installed, change what structlog or ``logging``'s other
handlers see, or raise into the application.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import wrapt

from otel_openreplay import handler_gate
from otel_openreplay.celery_logging import is_otel_handler

_logger = logging.getLogger(__name__)

CONTRIB_MODULE = "opentelemetry.instrumentation.structlog"
"""Where contrib's ``StructlogProcessor`` lives."""

NOT_ATTRIBUTES = frozenset(
    ("event", "level", "timestamp", "exc_info", "exception", "_record", "_logger", "_name", "_from_structlog")
)
"""Event keys that are not attributes: contrib's reserved keys (the message, the level and time that
the record carries itself, the exception) and structlog's bookkeeping."""

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
"""A ``LogRecord``'s own fields: an event key with one of these names would overwrite the record's."""

_METHOD_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

Unhook = Callable[[], None]
"""Undoes what :func:`install` did (idempotent)."""

_lock = threading.Lock()
_active = False
_patched: list[tuple[Any, Any]] = []  # (StructlogProcessor, its own original ``__call__``)


def install() -> Unhook | None:
    """Gate OpenTelemetry's handlers and contrib's processor once structlog is imported (now, if it is).

    ``None`` without structlog. Nothing is imported here: an application that has structlog installed but
    never imports it pays nothing (not even the gate's two checks per ``logging`` record).
    """
    global _active
    if importlib.util.find_spec("structlog") is None:
        return None
    removals: list[handler_gate.Remove] = []
    with _lock:
        _active = True

    def on_structlog(_module: Any) -> None:
        with _lock:
            if _active and not removals:
                removals.append(handler_gate.add(event_record))

    # Each runs now if its module is imported already, else when (if ever) it is.
    wrapt.register_post_import_hook(on_structlog, "structlog")
    wrapt.register_post_import_hook(_patch_contrib, CONTRIB_MODULE)

    def unhook() -> None:
        global _active
        with _lock:
            _active = False
            while removals:
                removals.pop()()
            while _patched:
                processor_class, original = _patched.pop()
                current = processor_class.__dict__.get("__call__")
                if isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is original:
                    processor_class.__call__ = original

    return unhook


def event_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` itself, or, if its ``msg`` is a structlog event dict, a copy with the event as its message."""
    event_dict = record.msg
    if type(event_dict) is not dict:
        return record
    fields = vars(record)
    if "_logger" not in fields or "_name" not in fields:  # not from wrap_for_formatter
        return record
    copy = logging.makeLogRecord(fields)  # as ProcessorFormatter copies it: other handlers keep theirs
    del copy._logger, copy._name  # type: ignore[attr-defined]  # structlog's, not attributes
    event = event_dict.get("event")
    copy.msg = event if isinstance(event, str) else ("" if event is None else str(event))
    copy.args = ()
    extra = copy.__dict__
    for key, value in event_dict.items():
        if key in NOT_ATTRIBUTES or not isinstance(key, str) or key in _RECORD_FIELDS:
            continue
        extra[key] = attribute_value(value)
    exc_info = _exc_info(event_dict.get("exc_info"))
    if exc_info is not None:
        copy.exc_info, copy.exc_text = exc_info, None
    elif isinstance(event_dict.get("exception"), str):  # rendered by format_exc_info
        extra["exception.stacktrace"] = event_dict["exception"]
    return copy


def attribute_value(value: Any) -> Any:
    """``value`` if OpenTelemetry takes it as an attribute as it is (str, bool, int, float), else ``str(value)``.

    (The SDK drops other values with a warning, which would be logged while a record is emitted.)
    """
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def _exc_info(value: Any) -> tuple[Any, Any, Any] | None:
    if value is True:
        found = sys.exc_info()
        return found if found[0] is not None else None
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and value[0] is not None:
        return value
    return None


def exported_by_logging(logger: Any, method_name: str, event_dict: Any) -> bool:
    """Whether ``logging`` will deliver this event to an OpenTelemetry handler (so contrib must not emit it).

    ``logger`` is what structlog wraps; only a ``logging.Logger`` has a ``logging`` road. Its level is
    the method's (``exception`` is ERROR), else the event's ``level`` key; an unknown level only
    asks for a reachable OpenTelemetry handler.
    """
    if not isinstance(logger, logging.Logger):
        return False
    levelno = _METHOD_LEVELS.get(method_name)
    if levelno is None and isinstance(event_dict, dict) and isinstance(event_dict.get("level"), str):
        levelno = _METHOD_LEVELS.get(event_dict["level"].lower())
    if levelno is not None and not logger.isEnabledFor(levelno):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if is_otel_handler(handler) and (levelno is None or levelno >= handler.level):
                return True
        current = current.parent if current.propagate else None
    return False


def _skip_when_logging_exports(wrapped: Callable[..., Any], _instance: Any, args: Any, kwargs: Any) -> Any:
    if _active and len(args) == 3 and not kwargs:
        try:
            if exported_by_logging(*args):
                return args[2]  # the processor passes the event on unchanged: so do we
        except Exception:  # decide nothing: contrib emits as it always did
            _logger.debug("otel-openreplay: could not tell where a structlog event goes", exc_info=True)
    return wrapped(*args, **kwargs)


def _patch_contrib(module: Any) -> None:
    try:
        processor_class = getattr(module, "StructlogProcessor", None)
        with _lock:
            if not _active or not isinstance(processor_class, type):
                return
            original = processor_class.__dict__.get("__call__")
            if original is None or isinstance(original, wrapt.FunctionWrapper):
                return
            processor_class.__call__ = wrapt.FunctionWrapper(original, _skip_when_logging_exports)  # type: ignore[method-assign]
            _patched.append((processor_class, original))
    except Exception:  # never into the import of contrib's module
        _logger.debug("otel-openreplay: could not wrap contrib's StructlogProcessor", exc_info=True)
