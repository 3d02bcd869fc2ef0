"""``OpenReplayLogProcessor``: the session of a record's context, onto the record.

For every log record emitted under a session it sets the attributes ``openReplaySessionToken`` and
``openReplaySession.id`` and prefixes a string body with
``[openReplaySessionToken=<token>] [openReplaySession.id=<id>] `` (a part only when known and
wanted, never twice). Non-string bodies keep their value and get the attributes only. With
``OTEL_OPENREPLAY_REPLAY_URL`` set, a record whose session has an id also gets
``openReplaySession.url``, its replay opened at the record's time (:mod:`otel_openreplay.replay`);
the link never goes into the prefix.

The session comes from the record's own context; failing that, from the record's attributes (set by
:mod:`otel_openreplay.capture` on an error logged after its request ended, or by the user through
``extra=``), validated either way, so a forged value never reaches a prefix.

It must run BEFORE the export processors of its ``LoggerProvider``: ``BatchLogRecordProcessor``
copies the record when it is emitted, so a body changed after it is lost. :func:`configure` and the
instrumentor put it first. It runs on every record in the application's own thread: it is short,
allocates only for records that have a session, and never raises.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor

from otel_openreplay.replay import URL_KEY, ReplayLinks
from otel_openreplay.session import (
    SESSION_ID_KEY,
    TOKEN_KEY,
    Session,
    apply_prefix,
    current_session,
    prefix_for,
)
from otel_openreplay.settings import Settings

_logger = logging.getLogger(__name__)


class OpenReplayLogProcessor(LogRecordProcessor):
    """Tags log records with the current OpenReplay session.

    Args:
        settings: which prefix parts to write, the replay URL; default :meth:`Settings.from_env`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings.from_env()
        self._token_part = "token" in settings.prefix
        self._id_part = "id" in settings.prefix
        self._links = ReplayLinks(settings.replay_url) if settings.replay_url else None

    def on_emit(self, log_record: Any) -> None:
        """Set the session attributes and the prefix on ``log_record`` (a ``ReadWriteLogRecord``)."""
        try:
            record = log_record.log_record
            found = session_of(record)
            if found is not None:
                tag(record, found, token_part=self._token_part, id_part=self._id_part)
                if self._links is not None and found.id is not None:
                    moment = record.timestamp or record.observed_timestamp
                    record.attributes[URL_KEY] = self._links.link(found.id, moment)
        except Exception:  # the application's logging call must never fail because of us
            _logger.debug("otel-openreplay: could not tag a log record", exc_info=True)

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True


def session_of(record: Any) -> Session | None:
    """The session of an SDK ``LogRecord``: its context's, else its (validated) attributes'."""
    ctx: Context | None = getattr(record, "context", None)  # None on SDKs before 1.35: current context
    found = current_session(ctx)
    if found is not None:
        return found
    attributes = record.attributes
    if attributes:
        token = attributes.get(TOKEN_KEY)
        session_id = attributes.get(SESSION_ID_KEY)
        if token is not None or session_id is not None:
            return Session.of(token, session_id)
    return None


def tag(record: Any, found: Session, *, token_part: bool = True, id_part: bool = True) -> None:
    """Write ``found`` into ``record``'s attributes and, for a string body, its prefix."""
    attributes = record.attributes
    if found.token is not None:
        attributes[TOKEN_KEY] = found.token
    elif TOKEN_KEY in attributes:
        del attributes[TOKEN_KEY]  # an invalid value from `extra=` never leaves the process
    if found.id is not None:
        attributes[SESSION_ID_KEY] = found.id
    elif SESSION_ID_KEY in attributes:
        del attributes[SESSION_ID_KEY]
    body = record.body
    if isinstance(body, str) and (token_part or id_part):
        record.body = apply_prefix(body, prefix_for(found, token=token_part, session_id=id_part))
