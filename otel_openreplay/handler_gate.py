"""A gate in front of OpenTelemetry's logging handler: records that other loggers route through ``logging``.

loguru and structlog can hand their records to Python's ``logging``, where OpenTelemetry's
``LoggingHandler`` turns them into OTel records. Two of those records need a word first:

* structlog's ``ProcessorFormatter.wrap_for_formatter`` hands ``logging`` the event DICT as the
  record's ``msg``: the handler would export ``str(event_dict)`` as the message
  (:mod:`otel_openreplay.structlog_records` turns it into a record with the event as message);
* loguru's ``PropagateHandler`` recipe copies each loguru record into ``logging``, while the loguru
  bridge exports the loguru record itself (:mod:`otel_openreplay.loguru_bridge` drops the copy).

Each of those modules registers a :data:`Rewrite`, asked only about records that may be one of those
(a ``dict`` as ``msg``, or a field named ``extra``, which loguru's copies have). :func:`add` wraps
``emit`` of both OpenTelemetry handler classes (instrumentation-logging's ``LoggingHandler`` and the
SDK's older one, each only if it is importable), so every instance is covered, whenever it was
created or added.
A rewrite returns the record to emit (the same one, or a copy), or ``None`` to drop it.

It must never change the record other handlers see (rewrites return copies), never raise into
``logging`` (a failing rewrite is logged at DEBUG and the record goes through unchanged), and cost a
plain ``logging`` record no more than those two checks.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

_logger = logging.getLogger(__name__)

Rewrite = Callable[[logging.LogRecord], "logging.LogRecord | None"]
"""What a gate does with one record: the record to emit (itself or a copy), or ``None`` to drop it."""

Remove = Callable[[], None]
"""Takes a rewrite out of the gate again (idempotent)."""

HANDLER_CLASSES = (
    ("opentelemetry.instrumentation.logging.handler", "LoggingHandler"),
    ("opentelemetry.sdk._logs._internal", "LoggingHandler"),
)
"""Where OpenTelemetry's logging handlers live: instrumentation-logging's (≥ 0.61b0) and the SDK's older one."""

_lock = threading.Lock()
_rewrites: tuple[Rewrite, ...] = ()
_wrapped: list[tuple[Any, Any]] = []  # (class, its own original ``emit``)


def add(rewrite: Rewrite) -> Remove:
    """Put ``rewrite`` in front of every OpenTelemetry logging handler; returns what takes it out again."""
    global _rewrites
    with _lock:
        if not _wrapped:
            _wrap_handlers()
        _rewrites = (*_rewrites, rewrite)

    def remove() -> None:
        global _rewrites
        with _lock:
            if rewrite not in _rewrites:
                return
            _rewrites = tuple(r for r in _rewrites if r is not rewrite)
            if not _rewrites:
                _unwrap_handlers()

    return remove


def _gate(original: Callable[[Any, logging.LogRecord], None]) -> Callable[[Any, logging.LogRecord], None]:
    """``emit`` with the rewrites in front (a plain function: it runs for every record, wrapt's call costs more)."""

    def emit(self: Any, record: logging.LogRecord) -> None:
        if type(record.msg) is not dict and "extra" not in record.__dict__:  # nothing any rewrite changes
            original(self, record)
            return
        for rewrite in _rewrites:
            try:
                rewritten = rewrite(record)
            except Exception:  # a rewrite's failure is ours: the record goes through as it was
                _logger.debug("otel-openreplay: could not rewrite a log record", exc_info=True)
                continue
            if rewritten is None:
                return
            record = rewritten
        original(self, record)

    emit.__wrapped__ = original  # type: ignore[attr-defined]
    emit.__doc__ = original.__doc__
    return emit


def _wrap_handlers() -> None:
    for module_name, class_name in HANDLER_CLASSES:
        try:
            handler_class: Any = getattr(importlib.import_module(module_name), class_name, None)
        except Exception:  # not installed, or a release where it moved: nothing to gate there
            _logger.debug("otel-openreplay: no %s.%s to gate", module_name, class_name, exc_info=True)
            continue
        original = handler_class.__dict__.get("emit") if isinstance(handler_class, type) else None
        if not callable(original) or getattr(original, "__wrapped__", None) is not None:
            continue
        handler_class.emit = _gate(original)
        _wrapped.append((handler_class, original))


def _unwrap_handlers() -> None:
    while _wrapped:
        handler_class, original = _wrapped.pop()
        current = handler_class.__dict__.get("emit")
        if getattr(current, "__wrapped__", None) is original:
            handler_class.emit = original
