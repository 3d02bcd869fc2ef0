"""Celery workers keep OpenTelemetry's logging handler, so their records still leave the process.

When a Celery worker sets up logging, Celery's default ``worker_hijack_root_logger=True``
empties the root logger's handlers (``celery/app/log.py``), OpenTelemetry's ``LoggingHandler``
included: without this module not one record of a worker reaches the exporter, solo or prefork.
:func:`install` (called by :func:`otel_openreplay.configure`, and so by ``opentelemetry-instrument``)
connects to Celery's documented signals:

* ``import_modules`` and ``celeryd_init``, both sent before the hijack, remember which OpenTelemetry
  handlers (instrumentation-logging's ``LoggingHandler`` or the SDK's older one) are on the root
  logger then; so does :func:`install` itself;
* ``after_setup_logger`` puts those handlers back on the root logger, after Celery's own console
  handler, which stays;
* ``after_setup_task_logger`` adds them to ``celery.task``, which Celery makes non-propagating, so
  records of ``get_task_logger(...)`` loggers are exported too;
* ``worker_process_shutdown``, sent in a prefork child as it exits, exports what the child's batch
  processors (logs and spans) still hold, waiting at most :data:`FLUSH_TIMEOUT_SECONDS`: the child ends
  with ``os._exit``, which skips the SDK's exit hook, so the records of its last second (of every task,
  with ``--max-tasks-per-child 1``) would be lost;
* ``celeryd_after_setup`` (sent once the worker's logging is set up) checks for a gevent worker
  patched too late (:mod:`otel_openreplay.celery_gevent`): under ``opentelemetry-instrument`` without
  OpenTelemetry's gevent setting such a worker runs no task, and the ERROR it logs names the setting;
* ``beat_embedded_init``, sent in the beat process ``celery worker -B`` forks, says when that process
  cannot export (:mod:`otel_openreplay.celery_beat`: OTLP/gRPC does not survive Celery closing its
  inherited file descriptors).

``celery beat`` (alone, or in the worker with ``-B``) sets logging up the same way, with the same
signals: its records and the worker's leave alike (``-B``'s beat over OTLP/HTTP only, see above).

A prefork child is forked after this, so it inherits the handlers (the SDK's batch processor starts
its thread again in the child); a child that sets logging up again (``--logfile`` with ``%i``, or a
spawned child) gets them back through the same signals.

What it must never do: import Celery when it is not installed; connect ``setup_logging`` (any receiver
there turns Celery's own logging configuration off); remove, replace or reorder a handler Celery or the
user set; add a handler to a logger twice, or to a logger whose records already reach it; raise into
Celery (a failure is logged at DEBUG and the worker goes on).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider

from otel_openreplay.celery_beat import warn_if_beat_cannot_export
from otel_openreplay.celery_gevent import warn_if_patched_late

_logger = logging.getLogger(__name__)

_DISPATCH_UID = "otel_openreplay.celery_logging"
"""Celery signals connect a receiver once per ``dispatch_uid``: a second install never doubles it."""

FLUSH_TIMEOUT_SECONDS = 5.0
"""The longest a prefork child's exit waits for its logs and spans to be exported."""

Unhook = Callable[[], None]
"""Disconnects what :func:`install` connected (idempotent)."""


def is_otel_handler(handler: logging.Handler) -> bool:
    """Whether ``handler`` is an OpenTelemetry ``LoggingHandler`` (either package's, or a subclass of one).

    Matched by name along the class hierarchy, so neither package has to be imported to ask.
    """
    return any(
        cls.__name__ == "LoggingHandler" and cls.__module__.startswith("opentelemetry.")
        for cls in type(handler).__mro__
    )


def _reaches(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Whether a record logged on ``logger`` already reaches ``handler`` (its own, or a propagating parent's)."""
    current: logging.Logger | None = logger
    while current is not None:
        if handler in current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False


class HandlerKeeper:
    """Remembers the root logger's OpenTelemetry handlers, puts them back after Celery's setup, flushes at exit.

    One keeper per :func:`install`; its methods are Celery signal receivers and never raise.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.handlers: tuple[logging.Handler, ...] = ()
        self.remember()

    def remember(self, **_: Any) -> None:
        """Take the OpenTelemetry handlers on the root logger now (the last look that finds any wins)."""
        try:
            found = tuple(handler for handler in logging.getLogger().handlers if is_otel_handler(handler))
            with self._lock:  # a later look that finds none (Celery emptied the root) keeps the earlier ones
                self.handlers = found or self.handlers
        except Exception:  # never into Celery
            _logger.debug("otel-openreplay: could not read the root logger's handlers", exc_info=True)

    def restore(self, logger: logging.Logger | None = None, **_: Any) -> None:
        """Add each remembered handler to ``logger`` (default: the root logger) unless its records reach it."""
        try:
            target = logger if isinstance(logger, logging.Logger) else logging.getLogger()
            with self._lock:
                for handler in self.handlers:
                    if not _reaches(target, handler):
                        target.addHandler(handler)
        except Exception:  # never into Celery
            _logger.debug("otel-openreplay: could not restore the OpenTelemetry logging handler", exc_info=True)

    def flush(self, **_: Any) -> None:
        """Export what this process's providers still hold, waiting at most :data:`FLUSH_TIMEOUT_SECONDS`.

        The providers: the global logger provider, the kept handlers' (read from their
        ``_logger_provider``, where both OpenTelemetry handlers keep it) and the global tracer
        provider. Each is flushed in a thread of its own (a stalled log export does not keep the spans
        back) and the child waits for all of them together no longer than the bound: the SDK's batch
        processors export in the caller's thread whatever timeout they are given, and a collector that
        is down would otherwise hold every exiting child for the exporter's whole retry time.
        """
        try:
            providers: list[Any] = []
            for provider in (
                get_logger_provider(),
                *(getattr(handler, "_logger_provider", None) for handler in self.handlers),
                trace.get_tracer_provider(),
            ):
                if callable(getattr(provider, "force_flush", None)) and not any(provider is p for p in providers):
                    providers.append(provider)
            deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
            timeout_millis = int(FLUSH_TIMEOUT_SECONDS * 1000)
            threads = [
                threading.Thread(
                    target=_flush_one, args=(provider, timeout_millis), name="otel-openreplay-flush", daemon=True
                )
                for provider in providers
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in threads):
                _logger.warning(
                    "otel-openreplay: telemetry not exported within %s s of the worker process's exit; "
                    "the rest is lost (is the collector reachable?)",
                    FLUSH_TIMEOUT_SECONDS,
                )
        except Exception:  # never into Celery
            _logger.debug("otel-openreplay: could not flush the providers", exc_info=True)


def _flush_one(provider: Any, timeout_millis: int) -> None:
    try:
        provider.force_flush(timeout_millis)
    except Exception:  # a provider's failure is its own; the others still flush
        _logger.debug("otel-openreplay: could not flush %r", provider, exc_info=True)


def install() -> Unhook | None:
    """Connect a :class:`HandlerKeeper` to Celery's signals; ``None`` (and nothing imported) without Celery.

    Returns the function that disconnects it again.
    """
    if importlib.util.find_spec("celery") is None:
        return None
    try:
        from celery import signals
    except Exception:  # a broken Celery install must not stop the application
        _logger.debug("otel-openreplay: celery is installed but its signals do not import", exc_info=True)
        return None
    keeper = HandlerKeeper()
    connections = (
        (signals.import_modules, keeper.remember),
        (signals.celeryd_init, keeper.remember),
        (signals.after_setup_logger, keeper.restore),
        (signals.after_setup_task_logger, keeper.restore),
        (signals.worker_process_shutdown, keeper.flush),
        (signals.celeryd_after_setup, warn_if_patched_late),
        (signals.beat_embedded_init, warn_if_beat_cannot_export),
    )
    for signal, receiver in connections:
        signal.connect(receiver, weak=False, dispatch_uid=_DISPATCH_UID)

    def unhook() -> None:
        for signal, _receiver in connections:
            signal.disconnect(dispatch_uid=_DISPATCH_UID)

    return unhook
