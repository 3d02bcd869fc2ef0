"""Entry hooks: a few lines per framework where its instrumentation leaves the session out of the handler.

Every other framework needs nothing of its own: its instrumentation extracts the request's context
with the global propagator and makes it current around the handler. These are the exceptions, each
checked with OpenTelemetry 1.45.1 / contrib 0.66b1 under ``opentelemetry-instrument``:

* **Django under ASGI.** The Django instrumentation's middleware reads ASGI requests with the ASGI
  instrumentation's helpers; when ``opentelemetry-instrumentation-asgi`` is not installed it skips
  every ASGI request (``_is_asgi_supported`` is false), so nothing — no span, no session — is
  current in the views. (Installed, it works: asgiref's ``SyncToAsync`` copies the context its sync
  middleware attached back to the event loop.) :meth:`EntryHooks._django_asgi` makes the request's
  session current around Django's ``ASGIHandler.__call__``, read from the ASGI scope by the
  propagator, so views, the tasks and threads they start, and Django's own records carry it either
  way. The ``django-asgi`` extra installs the ASGI instrumentation too, for spans and trace ids.
* **aiohttp.** Its server middleware makes its span current but not the context it extracted; that
  is covered generically, by the span's session (:mod:`otel_openreplay.session`), not here.
* **Falcon.** Its default handler for an unhandled exception writes the traceback to
  ``wsgi.errors`` (``App._python_error_handler``, ``req.log_error``), not to ``logging``, and its
  instrumentation records no exception on the span: :meth:`EntryHooks._falcon_error` logs it at
  ERROR, once, in the request's context. An error handler the app registers itself replaces
  Falcon's, and then this hook never runs (the app's handler reports it, or chooses not to).

:data:`SERVERS_LOGGING_UNHANDLED` names the servers that log an unhandled exception themselves,
through ``logging``, so that :mod:`otel_openreplay.capture` does not report it a second time.

Hooks are wrapt post-import hooks: a framework imported later is patched as it is imported, and a
framework that is never imported costs nothing. They wrap classes, so an object created before
:func:`otel_openreplay.configure` (a Falcon app) keeps Falcon's own handler. They never change what
the application answers and never raise; :meth:`EntryHooks.uninstall` puts every original back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry import context

from otel_openreplay.propagator import OpenReplayPropagator

_logger = logging.getLogger(__name__)

SERVERS_LOGGING_UNHANDLED = frozenset(
    {
        # aiohttp's RequestHandler logs "Error handling request" (logger aiohttp.server) after the span ends.
        "opentelemetry.instrumentation.aiohttp_server",
        # Tornado's RequestHandler.log_exception logs "Uncaught exception" (tornado.application) right
        # after the instrumentation's wrapper of it has recorded the exception and ended the span.
        "opentelemetry.instrumentation.tornado",
    }
)
"""Instrumentation scopes of SERVER spans whose server logs an unhandled exception itself (with
``exc_info``, to a logger that reaches the root logger), after the exception is recorded on the span."""

# Reports an unhandled exception in the current context: (exception, where it happened).
ReportT = Callable[[BaseException, str], None]


class EntryHooks:
    """The installed hooks and what they replaced.

    Args:
        propagator: reads the session from an ASGI scope (its settings decide ``propagate``).
        report_unhandled: logs an unhandled exception (``capture.log_unhandled``); ``None`` leaves
            Falcon's error path alone (exception capture turned off).
    """

    def __init__(self, propagator: OpenReplayPropagator, report_unhandled: ReportT | None) -> None:
        self._propagator = propagator
        self._report = report_unhandled
        self._active = False
        self._patched: list[tuple[type, str, Any]] = []

    def install(self) -> None:
        """Patch each framework as it is imported (at once if it already is)."""
        if self._active:
            return
        self._active = True
        wrapt.register_post_import_hook(self._patch_django, "django.core.handlers.asgi")
        if self._report is not None:
            wrapt.register_post_import_hook(self._patch_falcon, "falcon.app")
            wrapt.register_post_import_hook(self._patch_falcon, "falcon.asgi.app")

    def uninstall(self) -> None:
        """Put back every original still in place; hooks that fire later do nothing."""
        self._active = False
        for owner, name, wrapper in reversed(self._patched):
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, wrapper.__wrapped__)
        self._patched.clear()

    def _patch(self, module: Any, path: str, wrapper: Callable[..., Any]) -> None:
        if not self._active:
            return
        try:
            owner_name, name = path.split(".")
            owner = getattr(module, owner_name)
            self._patched.append((owner, name, wrapt.wrap_function_wrapper(owner, name, wrapper)))
        except Exception:  # a framework version that moved things: it runs unpatched
            _logger.debug("otel-openreplay: could not hook %s.%s", module.__name__, path, exc_info=True)

    def _patch_django(self, module: Any) -> None:
        self._patch(module, "ASGIHandler.__call__", self._django_asgi)

    def _patch_falcon(self, module: Any) -> None:
        self._patch(module, "App._python_error_handler", self._falcon_error)

    def _django_asgi(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Django's ``ASGIHandler.__call__(scope, receive, send)``: the request's session current around it."""
        scope = args[0] if args else kwargs.get("scope")
        if not self._active or not isinstance(scope, dict) or scope.get("type") != "http":
            return wrapped(*args, **kwargs)
        current = context.get_current()
        extracted = self._propagator.extract_asgi_scope(scope, current)
        if extracted is current:  # no session header: nothing to attach
            return wrapped(*args, **kwargs)
        return _attached(extracted, wrapped(*args, **kwargs))

    def _falcon_error(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Falcon's ``App._python_error_handler(req, resp, error, params)``: log the error, then Falcon's answer."""
        if self._active and self._report is not None:
            try:
                req, error = args[0], args[2]
                self._report(error, f"{req.method} {req.path}")
            except Exception:  # noqa: S110  Falcon still answers 500 and writes to wsgi.errors
                pass
        return wrapped(*args, **kwargs)


async def _attached(ctx: context.Context, call: Any) -> Any:
    """Await ``call`` (a coroutine) with ``ctx`` attached, detached afterwards whatever happens."""
    token = context.attach(ctx)
    try:
        return await call
    finally:
        context.detach(token)
