"""Names the one setting a gevent Celery worker under ``opentelemetry-instrument`` needs, when it lacks it.

``celery worker --pool gevent`` monkey-patches the standard library in ``celery``'s own ``main()``.
Under ``opentelemetry-instrument`` that is too late: the auto-instrumentation has already loaded
``opentelemetry-instrumentation-celery``, which imports Kombu, and Kombu's event loop keeps the
*original* ``select.select`` it took at import. The worker connects, says "ready.", receives tasks and
never runs one: the consumer blocks the whole gevent hub in a real ``select``. (The same as Celery's
issue 8168, where the worker is started from code.) OpenTelemetry's own setting
``OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all`` patches before anything is
imported; with it the worker runs, the SDK's batch processors run as greenlets and their records leave.

:func:`warn_if_patched_late` (a ``celeryd_after_setup`` receiver, connected by
:func:`otel_openreplay.celery_logging.install`: sent once the worker's logging is set up, before the
consumer starts, which may block before "ready.") logs one ERROR naming that setting when it finds the
hazard itself: gevent has patched ``select`` and Kombu still holds the unpatched function.

What it must never do: import gevent or Kombu (it reads ``sys.modules``: a process that has not
imported them cannot have the problem); patch anything, or try to repair Kombu; raise into Celery.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

_logger = logging.getLogger(__name__)

GEVENT_PATCH_ENV = "OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH"
"""OpenTelemetry's variable that makes ``opentelemetry-instrument`` run gevent's ``patch_all()`` first."""

LATE_PATCH_MESSAGE = (
    "otel-openreplay: gevent monkey-patched this Celery worker after Kombu was imported "
    "(opentelemetry-instrument loads Celery's instrumentation first): the worker receives tasks "
    "but never runs them. Set " + GEVENT_PATCH_ENV + "=patch_all for the worker."
)


def kombu_selects_unpatched(modules: Mapping[str, Any] | None = None) -> bool:
    """Whether gevent has patched ``select`` while Kombu's event loop still calls the original ``select()``.

    ``modules`` defaults to ``sys.modules``; nothing is imported. ``False`` when gevent, Kombu's
    ``kombu.utils.eventio`` or ``select`` is not loaded, when gevent has not patched ``select``, or when
    Kombu's reference cannot be read (another Kombu layout): only a certain hazard is reported.
    """
    loaded = sys.modules if modules is None else modules
    monkey = loaded.get("gevent.monkey")
    eventio = loaded.get("kombu.utils.eventio")
    select_module = loaded.get("select")
    if monkey is None or eventio is None or select_module is None:
        return False
    is_patched = getattr(monkey, "is_module_patched", None)
    kept = getattr(eventio, "_selectf", None)
    current = getattr(select_module, "select", None)
    if not callable(is_patched) or kept is None or current is None:
        return False
    return bool(is_patched("select")) and kept is not current


def warn_if_patched_late(**_: Any) -> None:
    """Log :data:`LATE_PATCH_MESSAGE` at ERROR if :func:`kombu_selects_unpatched`; never raises."""
    try:
        if kombu_selects_unpatched():
            _logger.error(LATE_PATCH_MESSAGE)
    except Exception:  # never into Celery
        _logger.debug("otel-openreplay: could not check gevent's patching", exc_info=True)
