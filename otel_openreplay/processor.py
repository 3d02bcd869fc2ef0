"""``OpenReplayLogProcessor``: the session of a record's context, onto the record.

For every log record emitted under a session it sets the attributes ``openReplaySessionToken`` and
``openReplaySession.id`` and prefixes a string body with
``[openReplaySessionToken=<token>] [openReplaySession.id=<id>] `` (a part only when known and
wanted, never twice). Non-string bodies keep their value and get the attributes only. With
``OTEL_OPENREPLAY_REPLAY_URL`` set, a record whose session has an id also gets
``openReplaySession.url``, its replay opened at the record's time (:mod:`otel_openreplay.replay`);
the link never goes into the prefix.

The session comes from the record's own context (our key, then W3C baggage, then the span current
there: see :mod:`otel_openreplay.session`); failing that, from the record's attributes (set by
:mod:`otel_openreplay.capture` on an error logged after its request ended, or by the user through
``extra=``), validated either way, so a forged value never reaches a prefix.

It must run BEFORE the export processors of its ``LoggerProvider``: ``BatchLogRecordProcessor``
copies the record when it is emitted, so a body changed after it is lost. :func:`configure` and the
instrumentor put it first. It runs on every record in the application's own thread: it is short,
allocates only for records that have a session, and never raises.

Speed: what a record of a session gets is worked out once per session and processor settings (a
:class:`Tag`, kept in :attr:`Session.derived`), so the per-record work is one context look-up, the
attribute writes and the prefix — within a few hundred nanoseconds of a processor that writes values
known in advance (``benchmarks/overhead.py``). To write one more per-session value, give :class:`Tag`
the pair in :func:`tag_for` and put its setting into the processor's ``_tag_key``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.sdk._logs import LogRecordProcessor

from otel_openreplay.replay import URL_KEY, ReplayLinks
from otel_openreplay.session import (
    CONTEXT_KEY,
    SESSION_ID_KEY,
    TOKEN_KEY,
    Session,
    apply_prefix,
    prefix_for,
    session_in_baggage,
    session_of_span,
)
from otel_openreplay.settings import Settings

_logger = logging.getLogger(__name__)

_SESSION_KEYS = frozenset((TOKEN_KEY, SESSION_ID_KEY))
_PREFIX_MARK = "[openReplaySession"
"""Where both prefix parts begin: a body that does not start with it cannot carry one already."""


@dataclass(frozen=True, slots=True)
class Tag:
    """What every record of one session gets, under one processor's settings."""

    attributes: tuple[tuple[str, str], ...]
    """The attributes to set, in order."""
    absent: tuple[str, ...]
    """Session attributes the session has no valid value for: removed if a record carries them."""
    prefix: str
    """The body prefix ("" for none)."""


def tag_for(found: Session, *, token_part: bool = True, id_part: bool = True) -> Tag:
    """The :class:`Tag` of ``found``: its attributes, the ones it lacks, its prefix."""
    attributes: list[tuple[str, str]] = []
    absent: list[str] = []
    for key, value in ((TOKEN_KEY, found.token), (SESSION_ID_KEY, found.id)):
        if value is not None:
            attributes.append((key, value))
        else:
            absent.append(key)  # an invalid value from `extra=` never leaves the process
    prefix = prefix_for(found, token=token_part, session_id=id_part) if token_part or id_part else ""
    return Tag(tuple(attributes), tuple(absent), prefix)


_NO_TAG = Tag((), (), "")


class OpenReplayLogProcessor(LogRecordProcessor):
    """Tags log records with the current OpenReplay session.

    Args:
        settings: which prefix parts to write, the replay URL; default :meth:`Settings.from_env`.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings.from_env()
        self._token_part = "token" in settings.prefix
        self._id_part = "id" in settings.prefix
        # Names this processor's settings in Session.derived: every setting tag_for reads is in it.
        self._tag_key = f"{__name__}:token={self._token_part}:id={self._id_part}"
        self._last: tuple[Session | None, Tag] = (None, _NO_TAG)  # the last session seen, and its tag
        # The last context without the package's key, and the session its baggage or its current span
        # holds (or None; a span keeps its session from its start, so the answer never changes). The
        # reference keeps that one context alive until a record of another context is emitted.
        self._last_context: tuple[Context | None, Session | None] = (None, None)
        # Replay links depend on each record's time: built per record, from a per-session cache.
        self._links = ReplayLinks(settings.replay_url) if settings.replay_url else None

    def on_emit(self, log_record: Any) -> None:
        """Set the session attributes and the prefix on ``log_record`` (a ``ReadWriteLogRecord``)."""
        try:
            record = log_record.log_record
            ctx: Context | None = record.context
            if ctx is None:  # (an empty Context is falsy: compare with None)
                ctx = get_current()
            found: Any = ctx.get(CONTEXT_KEY)  # a Session, or None
            if found is None:
                seen = self._last_context  # contexts are immutable: one's baggage is read once
                if seen[0] is ctx:
                    found = seen[1]
                else:
                    found = session_in_baggage(ctx) or session_of_span(ctx)
                    self._last_context = (ctx, found)
                if found is None:
                    found = _session_in_attributes(record.attributes)
                    if found is None:
                        return
            last = self._last  # one tuple, swapped whole: threads never see a session with another's tag
            if last[0] is found:
                tag = last[1]
            else:
                tag = found.derived.get(self._tag_key)
                if tag is None:
                    tag = found.derived[self._tag_key] = tag_for(
                        found, token_part=self._token_part, id_part=self._id_part
                    )
                self._last = (found, tag)
            attributes = record.attributes
            for key, value in tag.attributes:
                attributes[key] = value
            if tag.absent:
                _remove(attributes, tag.absent)
            body = record.body
            if tag.prefix and isinstance(body, str):
                if body.startswith(_PREFIX_MARK):  # it may carry (part of) a prefix already
                    record.body = apply_prefix(body, tag.prefix)
                else:
                    record.body = tag.prefix + body
            links = self._links
            if links is not None and found.id is not None:
                attributes[URL_KEY] = links.link(found.id, record.timestamp or record.observed_timestamp)
        except Exception:  # the application's logging call must never fail because of us
            _logger.debug("otel-openreplay: could not tag a log record", exc_info=True)

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here."""
        return True


def _remove(attributes: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in attributes:
            del attributes[key]


def _session_in_attributes(attributes: Any) -> Session | None:
    """A session given as record attributes (``extra=``, or the exception capture): validated, or None."""
    if attributes and not _SESSION_KEYS.isdisjoint(attributes):
        return Session.of(attributes.get(TOKEN_KEY), attributes.get(SESSION_ID_KEY))
    return None
