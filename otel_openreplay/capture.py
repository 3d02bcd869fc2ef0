"""Errors keep their session even when they are logged after the request is over.

Three hooks, installed by :func:`otel_openreplay.configure` and the instrumentor, removed by
:meth:`Wiring.undo`:

* An exception recorded on a span that carries a session (``Span.record_exception``, which every
  server instrumentation calls as the exception leaves the request) remembers that session, and so
  does an exception leaving ``with otel_openreplay.session(...)``.
* A Python ``logging`` record whose ``exc_info`` is such an exception gets the session as record
  attributes, which both OTel logging handlers copy into the log record; the log processor then
  writes the prefix. This is what puts the session on uvicorn's ``Exception in ASGI application``,
  logged after the ASGI middleware has left the request's context.
* An exception that escapes a SERVER span without having been logged at ERROR (uvicorn logs it
  only later, to its own non-propagating logger) is logged at ERROR by ``otel_openreplay.uncaught``
  right there, in the request's context.
  Servers that log it themselves, through ``logging``, right after (aiohttp, Tornado: see
  :data:`otel_openreplay.entry_hooks.SERVERS_LOGGING_UNHANDLED`) are left to do so: their record
  carries the session the exception remembers, and the error is reported once.
* ``sys.excepthook`` and ``threading.excepthook`` log uncaught exceptions at ERROR with ``exc_info``
  (and so with the session when one is current or remembered), then call the previous hook.

They must never change what the application sees: every hook calls the one it replaced and
swallows its own failures.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from opentelemetry.trace import SpanKind

from otel_openreplay.entry_hooks import SERVERS_LOGGING_UNHANDLED
from otel_openreplay.session import (
    SESSION_ID_KEY,
    SPAN_ATTRIBUTE,
    TOKEN_KEY,
    Session,
    current_session,
    remember,
    remembered,
)

UNCAUGHT_LOGGER = "otel_openreplay.uncaught"
"""Name of the logger that reports uncaught exceptions."""

_uncaught = logging.getLogger(UNCAUGHT_LOGGER)
_LOGGED_ATTR = "__otel_openreplay_logged__"

# The factory signature of `logging.setLogRecordFactory`.
RecordFactoryT = Callable[..., logging.LogRecord]


class Capture:
    """The installed hooks, and what they replaced, so that :meth:`uninstall` restores exactly that."""

    def __init__(self) -> None:
        self._previous_factory: RecordFactoryT | None = None
        self._previous_excepthook: Callable[..., Any] | None = None
        self._previous_threading_hook: Callable[..., Any] | None = None
        self._previous_record_exception: Callable[..., Any] | None = None

    def install(self) -> None:
        """Install the hooks (idempotent per instance)."""
        if self._previous_factory is not None:
            return
        self._previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._make_record)
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        self._previous_threading_hook = threading.excepthook
        threading.excepthook = self._threading_hook
        self._patch_record_exception()

    def uninstall(self) -> None:
        """Put back what :meth:`install` replaced, where nobody replaced it again since."""
        if self._previous_factory is None:
            return
        if logging.getLogRecordFactory() == self._make_record:
            logging.setLogRecordFactory(self._previous_factory)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook or sys.__excepthook__
        if threading.excepthook == self._threading_hook:
            threading.excepthook = self._previous_threading_hook or threading.__excepthook__
        if self._previous_record_exception is not None:
            from opentelemetry.sdk.trace import Span

            Span.record_exception = self._previous_record_exception  # type: ignore[method-assign]
            self._previous_record_exception = None
        self._previous_factory = None

    def _make_record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        factory = self._previous_factory or logging.LogRecord
        record = factory(*args, **kwargs)
        exc_info = record.exc_info
        if exc_info:
            try:
                error = exc_info[1]
                if record.levelno >= logging.ERROR:
                    _mark_logged(error)
                found = remembered(error)
                if found is not None and TOKEN_KEY not in record.__dict__:
                    _set_record_session(record, found)
            except Exception:  # noqa: S110  a record is made whatever happens here
                pass
        return record

    def _excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _log_uncaught("Uncaught exception", exc_type, exc, tb)
        (self._previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)

    def _threading_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            name = args.thread.name if args.thread is not None else "?"
            _log_uncaught(f"Uncaught exception in thread {name}", args.exc_type, args.exc_value, args.exc_traceback)
        (self._previous_threading_hook or threading.__excepthook__)(args)

    def _patch_record_exception(self) -> None:
        try:
            from opentelemetry.sdk.trace import Span
        except ImportError:  # API-only process: no spans to hook
            return
        original = Span.record_exception
        self._previous_record_exception = original

        def record_exception(span: Span, exception: BaseException, *args: Any, **kwargs: Any) -> None:
            _remember_from_span(span, exception)
            original(span, exception, *args, **kwargs)
            if span.kind is SpanKind.SERVER:
                _report_unlogged(span, exception)

        record_exception.__wrapped__ = original  # type: ignore[attr-defined]
        Span.record_exception = record_exception  # type: ignore[method-assign,assignment]  # same call, *args


def _remember_from_span(span: Any, exception: BaseException) -> None:
    try:
        found = getattr(span, SPAN_ATTRIBUTE, None)
        if not isinstance(found, Session):
            attributes = span.attributes or {}
            found = Session.of(attributes.get(TOKEN_KEY), attributes.get(SESSION_ID_KEY)) or current_session()
        if found is not None:
            remember(exception, found)
    except Exception:  # noqa: S110  recording the exception matters more than remembering the session
        pass


def _mark_logged(error: object) -> None:
    with contextlib.suppress(Exception):  # an exception type that refuses attributes
        setattr(error, _LOGGED_ATTR, True)


def _report_unlogged(span: Any, exception: BaseException) -> None:
    """Log an exception that escaped a request and that nobody logged at ERROR before it escaped.

    Servers such as uvicorn log it themselves only after the request's context is gone, and to a
    logger that does not propagate to the root logger, where OpenTelemetry's handler sits. Logged
    here, while the request's context is still attached, it carries the session.
    """
    scope = getattr(span, "instrumentation_scope", None)
    if getattr(scope, "name", None) in SERVERS_LOGGING_UNHANDLED:
        return
    log_unhandled(exception, span.name)


def log_unhandled(exception: BaseException, where: str) -> None:
    """Log ``exception`` at ERROR as unhandled in ``where``, with its traceback, unless it was logged already.

    Call it in the request's context (the record takes its session from there). It never raises.
    """
    if getattr(exception, _LOGGED_ATTR, False):
        return
    _mark_logged(exception)
    with contextlib.suppress(Exception):
        _uncaught.error(
            "Unhandled exception in %s",
            where,
            exc_info=(type(exception), exception, exception.__traceback__),
        )


def _set_record_session(record: logging.LogRecord, found: Session) -> None:
    if found.token is not None:
        record.__dict__[TOKEN_KEY] = found.token
    if found.id is not None:
        record.__dict__[SESSION_ID_KEY] = found.id


def _log_uncaught(message: str, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        return
    with contextlib.suppress(Exception):  # the previous hook still reports it
        _uncaught.error(message, exc_info=(exc_type, exc, tb))
