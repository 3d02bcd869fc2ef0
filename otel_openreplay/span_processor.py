"""``OpenReplaySpanProcessor``: the session attributes on every span started under a session.

A span started while a session is current — server spans included, since server instrumentations
start them in the context the propagator extracted — gets ``openReplaySessionToken`` and
``openReplaySession.id``, so traces can be searched by session too.

It only reads the context it is given and sets two attributes; it never exports, never raises.
"""

from __future__ import annotations

import logging

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_openreplay.session import SESSION_ID_KEY, TOKEN_KEY, current_session

_logger = logging.getLogger(__name__)


class OpenReplaySpanProcessor(SpanProcessor):
    """Sets the session attributes on spans started under a session."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Copy the session of ``parent_context`` (default: the current context) onto ``span``."""
        try:
            found = current_session(parent_context)
            if found is None:
                return
            if found.token is not None:
                span.set_attribute(TOKEN_KEY, found.token)
            if found.id is not None:
                span.set_attribute(SESSION_ID_KEY, found.id)
        except Exception:  # a span must start whatever happens here
            _logger.debug("otel-openreplay: could not tag a span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at the end of a span."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True
