"""``OpenReplayInstrumentor``: what ``opentelemetry-instrument`` loads to turn otel-openreplay on.

Registered under the ``opentelemetry_instrumentor`` entry point ``openreplay``, it runs after the
configurator (opentelemetry-distro's, or none) and calls :func:`otel_openreplay.configure`: the
propagator joins the global one, the log processor goes ahead of every export processor, the span
processor and the exception capture are added. ``uninstrument()`` undoes all of it.

It must never stop the application from starting: a bad ``OTEL_OPENREPLAY_*`` value is logged as an
ERROR naming the variable, and then nothing is instrumented (a privacy setting such as
``OTEL_OPENREPLAY_PROPAGATE=false`` is never silently replaced by a default).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_openreplay.settings import SettingsError
from otel_openreplay.wiring import Wiring, configure

_logger = logging.getLogger(__name__)

_PROVIDER_KEYWORDS = ("logger_provider", "tracer_provider")


class OpenReplayInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the process for OpenReplay: ``OpenReplayInstrumentor().instrument(**settings)``.

    Keyword arguments are those of :func:`otel_openreplay.configure`.
    """

    _wiring: Wiring | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """No library is needed: it works with every framework OpenTelemetry instruments."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        settings = {key: value for key, value in kwargs.items() if key not in ("skip_dep_check",)}
        try:
            self._wiring = configure(**settings)
        except SettingsError as error:
            _logger.error("otel-openreplay is not instrumented: %s", error)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._wiring is not None:
            self._wiring.undo()
            self._wiring = None
