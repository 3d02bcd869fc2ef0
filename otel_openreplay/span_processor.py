"""``OpenReplaySpanProcessor``: the session attributes on every span started under a session.

A span started while a session is current — server spans included, since server instrumentations
start them in the context the propagator extracted — gets ``openReplaySessionToken`` and
``openReplaySession.id``, so traces can be searched by session too. With
``OTEL_OPENREPLAY_REPLAY_URL`` set, it also gets ``openReplaySession.url``: the replay opened at the
span's start (:mod:`otel_openreplay.replay`).

Whatever ``OTEL_OPENREPLAY_SPAN_ATTRIBUTES`` says, it keeps the validated session with the span (a
private Python attribute, no export): readers that find no session in a context fall back to the
span current there (:func:`otel_openreplay.session.session_of_span`). That is what makes the session
current in an aiohttp handler, whose instrumentation makes its span current but not the context it
extracted.

It only reads the context it is given and sets attributes; it never exports, never raises.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_openreplay.replay import URL_KEY, ReplayLinks
from otel_openreplay.session import SESSION_ID_KEY, TOKEN_KEY, current_session, keep_on_span
from otel_openreplay.settings import Settings

_logger = logging.getLogger(__name__)


class OpenReplaySpanProcessor(SpanProcessor):
    """Keeps the session with spans started under one, and sets their session attributes.

    Args:
        settings: whether to set attributes (``span_attributes``), the replay URL (``replay_url``);
            default :meth:`Settings.from_env`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings.from_env()
        self._attributes = settings.span_attributes
        self._links = ReplayLinks(settings.replay_url) if settings.replay_url else None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Copy the session of ``parent_context`` (default: the current context) onto ``span``."""
        try:
            found = current_session(parent_context)
            if found is None:
                return
            keep_on_span(span, found)
            if not self._attributes:
                return
            if found.token is not None:
                span.set_attribute(TOKEN_KEY, found.token)
            if found.id is not None:
                span.set_attribute(SESSION_ID_KEY, found.id)
                if self._links is not None:
                    span.set_attribute(URL_KEY, self._links.link(found.id, span.start_time))
        except Exception:  # a span must start whatever happens here
            _logger.debug("otel-openreplay: could not tag a span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at the end of a span."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True
