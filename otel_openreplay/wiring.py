"""Wiring: `configure()`, one call that puts otel-openreplay into an OpenTelemetry SDK setup, in order.

It adds :class:`OpenReplayPropagator` to the global propagator (keeping the ones there), puts
:class:`OpenReplayLogProcessor` AHEAD of every processor of the logger provider (a processor after
``BatchLogRecordProcessor`` loses its body change), adds :class:`OpenReplaySpanProcessor`, and
installs the exception capture of :mod:`otel_openreplay.capture` and the few framework entry hooks
of :mod:`otel_openreplay.entry_hooks`; where Celery is installed, it keeps OpenTelemetry's logging
handler in Celery workers (:mod:`otel_openreplay.celery_logging`); where loguru or structlog is, their
records reach OpenTelemetry once each (:mod:`otel_openreplay.loguru_bridge`,
:mod:`otel_openreplay.structlog_records`). A provider
that is not set yet is wired the moment it is set. The returned :class:`Wiring` undoes all of it.

The instrumentor calls the same function, so the auto-instrumented and the manual setup cannot
differ. It must not create providers or exporters the user did not ask for, and it is idempotent:
calling it twice wires once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as _logs_internal
from opentelemetry._logs import get_logger_provider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.trace import TracerProvider

from otel_openreplay import celery_logging, loguru_bridge, structlog_records
from otel_openreplay.capture import Capture, log_unhandled
from otel_openreplay.entry_hooks import EntryHooks
from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import set_configured_propagate
from otel_openreplay.settings import Settings
from otel_openreplay.span_processor import OpenReplaySpanProcessor

_logger = logging.getLogger(__name__)
_lock = threading.RLock()


@dataclass
class Wiring:
    """What :func:`configure` changed; :meth:`undo` puts everything back."""

    settings: Settings
    log_processor: OpenReplayLogProcessor
    span_processor: OpenReplaySpanProcessor | None
    propagator: OpenReplayPropagator
    export_processor: BatchLogRecordProcessor | None = None
    _previous_textmap: TextMapPropagator | None = None
    _capture: Capture | None = None
    _providers: list[Any] = field(default_factory=list)
    _unhooks: list[Callable[[], None]] = field(default_factory=list)

    def undo(self) -> None:
        """Remove the processors, the propagator, the hooks (idempotent)."""
        with _lock:
            for unhook in reversed(self._unhooks):
                unhook()
            self._unhooks.clear()
            for provider in self._providers:
                _remove_processor(provider, self.log_processor)
                if self.span_processor is not None:
                    _remove_processor(provider, self.span_processor)
                if self.export_processor is not None:
                    _remove_processor(provider, self.export_processor)
            self._providers.clear()
            if self.export_processor is not None:
                self.export_processor.shutdown()  # flushes what it holds
            if self._previous_textmap is not None:
                propagate.set_global_textmap(self._previous_textmap)
                self._previous_textmap = None
            if self._capture is not None:
                self._capture.uninstall()
                self._capture = None
            if _active.get("wiring") is self:
                del _active["wiring"]
                set_configured_propagate(None)


_active: dict[str, Wiring] = {}


def configure(
    *,
    logger_provider: LoggerProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    exporter: LogRecordExporter | None = None,
    **settings: Any,
) -> Wiring:
    """Wire otel-openreplay into the given providers, or the global ones (now, or when they are set).

    Args:
        logger_provider: an SDK ``LoggerProvider``; default the global one.
        tracer_provider: an SDK ``TracerProvider``; default the global one.
        exporter: a log exporter to add behind our processor in a ``BatchLogRecordProcessor``, e.g.
            ``ElasticsearchLogExporter()`` to write OpenReplay's documents with no collector.
        **settings: any setting of the README table by keyword (``propagate=False``,
            ``prefix="token"``, ...); keywords win over ``OTEL_OPENREPLAY_*`` variables.

    Raises:
        SettingsError: a setting has a bad value (the message names it).

    Calling it again returns the existing wiring unchanged; call ``.undo()`` first to change it.
    """
    with _lock:
        existing = _active.get("wiring")
        if existing is not None:
            return existing
        resolved = Settings.from_env(**settings)
        wiring = Wiring(
            settings=resolved,
            log_processor=OpenReplayLogProcessor(resolved),
            span_processor=OpenReplaySpanProcessor(resolved),  # always: spans keep the session (session.py)
            propagator=OpenReplayPropagator(resolved),
            export_processor=BatchLogRecordProcessor(exporter) if exporter is not None else None,
        )
        _add_propagator(wiring)
        _wire_logs(wiring, logger_provider)
        _wire_traces(wiring, tracer_provider)
        if resolved.capture_exceptions:
            wiring._capture = Capture()
            wiring._capture.install()
        hooks = EntryHooks(wiring.propagator, log_unhandled if resolved.capture_exceptions else None)
        hooks.install()  # the frameworks whose instrumentation leaves the session out of the handler
        wiring._unhooks.append(hooks.uninstall)
        unhook_celery = celery_logging.install()
        if unhook_celery is not None:
            wiring._unhooks.append(unhook_celery)
        for unhook in (
            loguru_bridge.install(logger_provider) if resolved.loguru else None,
            structlog_records.install(),
        ):
            if unhook is not None:
                wiring._unhooks.append(unhook)
        _active["wiring"] = wiring
        set_configured_propagate(resolved.propagate)  # session()'s default follows it
        _logger.debug("otel-openreplay configured: %s", resolved.describe())
        return wiring


def _add_propagator(wiring: Wiring) -> None:
    current = propagate.get_global_textmap()
    members = list(current._propagators) if isinstance(current, CompositePropagator) else [current]
    if any(isinstance(member, OpenReplayPropagator) for member in members):
        return  # named in OTEL_PROPAGATORS already: keep the user's order
    wiring._previous_textmap = current
    propagate.set_global_textmap(CompositePropagator([*members, wiring.propagator]))


def _wire_logs(wiring: Wiring, provider: Any) -> None:
    if provider is not None:
        _insert_first(wiring, provider, wiring.log_processor)
        return
    current = get_logger_provider()
    if isinstance(current, LoggerProvider):
        _insert_first(wiring, current, wiring.log_processor)
        return
    # Not set yet (no configurator, or the app sets it later): wire it the moment it is set.
    original = _logs_internal._set_logger_provider

    def set_and_wire(logger_provider: Any, log: bool) -> None:
        original(logger_provider, log)
        now = get_logger_provider()
        if isinstance(now, LoggerProvider) and now not in wiring._providers:
            _insert_first(wiring, now, wiring.log_processor)

    _logs_internal._set_logger_provider = set_and_wire
    wiring._unhooks.append(lambda: _restore(_logs_internal, "_set_logger_provider", set_and_wire, original))


def _wire_traces(wiring: Wiring, provider: Any) -> None:
    processor = wiring.span_processor
    if processor is None:
        return
    if provider is not None:
        _append(wiring, provider, processor)
        return
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        _append(wiring, current, processor)
        return
    original = trace._set_tracer_provider

    def set_and_wire(tracer_provider: Any, log: bool) -> None:
        original(tracer_provider, log)
        now = trace.get_tracer_provider()
        if isinstance(now, TracerProvider) and now not in wiring._providers:
            _append(wiring, now, processor)

    trace._set_tracer_provider = set_and_wire
    wiring._unhooks.append(lambda: _restore(trace, "_set_tracer_provider", set_and_wire, original))


def _insert_first(wiring: Wiring, provider: Any, processor: OpenReplayLogProcessor) -> None:
    """Put ``processor`` ahead of every processor already registered on ``provider``."""
    multi = getattr(provider, "_multi_log_record_processor", None)
    current = getattr(multi, "_log_record_processors", None)
    if isinstance(current, tuple):
        if any(isinstance(member, OpenReplayLogProcessor) for member in current):
            return
        with multi._lock:  # type: ignore[union-attr]
            multi._log_record_processors = (processor, *multi._log_record_processors)  # type: ignore[union-attr]
    else:  # an SDK whose internals moved: appending still tags records for later processors
        _logger.warning("otel-openreplay: could not put the log processor first; appended it instead")
        provider.add_log_record_processor(processor)
    if wiring.export_processor is not None:
        provider.add_log_record_processor(wiring.export_processor)
    wiring._providers.append(provider)


def _append(wiring: Wiring, provider: Any, processor: OpenReplaySpanProcessor) -> None:
    multi = getattr(provider, "_active_span_processor", None)
    current = getattr(multi, "_span_processors", ())
    if any(isinstance(member, OpenReplaySpanProcessor) for member in current):
        return
    provider.add_span_processor(processor)
    wiring._providers.append(provider)


def _remove_processor(provider: Any, processor: Any) -> None:
    for multi_name, tuple_name in (
        ("_multi_log_record_processor", "_log_record_processors"),
        ("_active_span_processor", "_span_processors"),
    ):
        multi = getattr(provider, multi_name, None)
        current = getattr(multi, tuple_name, None)
        if isinstance(current, tuple) and processor in current:
            with multi._lock:  # type: ignore[union-attr]
                setattr(multi, tuple_name, tuple(p for p in getattr(multi, tuple_name) if p is not processor))


def _restore(module: Any, name: str, ours: Any, original: Any) -> None:
    if getattr(module, name) is ours:
        setattr(module, name, original)
