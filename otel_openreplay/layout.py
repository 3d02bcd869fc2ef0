"""The document contract: one OpenTelemetry log record → one Elasticsearch document OpenReplay can read.

This module is the single source of truth for the layout in docs/DESIGN.md ("The document contract"); the
collector config implements the same rules in OTTL and the end-to-end tests compare both against the
golden documents in ``tests/fixtures/documents``. Everything here is pure: no I/O, no clock, no
environment. The mapping is ONE table (:data:`FIELDS`) of dotted field name → extractor; reshaping
dotted names into nested objects is a separate helper (:func:`expand_dotted`).

It must never raise on a strange record (a missing resource, a non-string body, an invalid session
value): a value it cannot use is left out of the document. It must never write a field without a
value (no ``""``, no ``None``, no empty object) and never add a prefix part twice.

Both SDK shapes are read by attribute, without importing names that move between SDK versions:
``ReadableLogRecord``/``ReadWriteLogRecord`` (SDK ≥ 1.39: ``.log_record``, ``.resource``,
``.instrumentation_scope``) and the older ``LogData`` (``.log_record`` with ``.resource`` on the
record itself, ``.instrumentation_scope``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from otel_openreplay.connection import DEFAULT_MIN_SEVERITY_NUMBER
from otel_openreplay.replay import URL_KEY, kept_link, replay_link
from otel_openreplay.session import SESSION_ID_KEY, TOKEN_KEY, Session, apply_prefix, prefix_for

EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
SERVICE_NAME = "service.name"

_HEX_TRACE_ID = 32
_HEX_SPAN_ID = 16


@dataclass(frozen=True)
class RecordView:
    """The parts of a log record the layout reads, already normalised (plain types, no SDK objects)."""

    body: Any
    attributes: Mapping[str, Any]
    severity_number: int
    severity_text: str | None
    time_unix_nano: int | None
    observed_time_unix_nano: int | None
    trace_id: int
    span_id: int
    service_name: str | None
    logger: str | None
    replay_url: str | None = None
    """The WRITER's ``OTEL_OPENREPLAY_REPLAY_URL`` (not the record's): the link is built from it when set."""

    @property
    def session(self) -> Session | None:
        """The record's validated session (token and/or id; the id derived from the token if absent)."""
        return Session.of(self.attributes.get(TOKEN_KEY), self.attributes.get(SESSION_ID_KEY))


Extractor = Callable[[RecordView], Any]
"""Reads one document field from a record view; returns ``None`` (or ``""``/``[]``) when it has no value."""


def view_of(record: Any, replay_url: str | None = None) -> RecordView:
    """Normalise an SDK log record (any supported shape, or a bare API ``LogRecord``) into a view.

    ``replay_url`` is the writer's validated dashboard URL, or ``None`` when it has none.
    """
    inner = getattr(record, "log_record", record)
    resource = getattr(record, "resource", None) or getattr(inner, "resource", None)
    scope = getattr(record, "instrumentation_scope", None) or getattr(inner, "instrumentation_scope", None)
    resource_attributes = getattr(resource, "attributes", None) or {}
    severity = getattr(inner, "severity_number", None)
    severity_value = getattr(severity, "value", severity)
    return RecordView(
        body=getattr(inner, "body", None),
        attributes=getattr(inner, "attributes", None) or {},
        severity_number=severity_value if isinstance(severity_value, int) else 0,
        severity_text=_text(getattr(inner, "severity_text", None)),
        time_unix_nano=getattr(inner, "timestamp", None) or None,
        observed_time_unix_nano=getattr(inner, "observed_timestamp", None) or None,
        trace_id=getattr(inner, "trace_id", None) or 0,
        span_id=getattr(inner, "span_id", None) or 0,
        service_name=_text(resource_attributes.get(SERVICE_NAME)),
        logger=_text(getattr(scope, "name", None)),
        replay_url=replay_url,
    )


def level_for(severity_number: int) -> str | None:
    """OpenReplay's lowercase level for an OTel severity number, else ``None`` (0 and below: no severity).

    17-24 (ERROR … FATAL4) are ``error``, 13-16 ``warning``, 9-12 ``info``, 1-8 ``debug``; a number above 24,
    outside OTel's range but possible over OTLP, counts as the most severe. The severity text plays no
    part (it goes to ``log.level`` as sent): OpenReplay ≥ 1.21's panel reads ``level`` with a
    case-sensitive ``includes``, and a document without it fails the panel for the whole session.
    """
    if severity_number >= 17:
        return "error"
    if 13 <= severity_number <= 16:
        return "warning"
    if 9 <= severity_number <= 12:
        return "info"
    if 1 <= severity_number <= 8:
        return "debug"
    return None


def format_time(time_unix_nano: int | None) -> str | None:
    """UTC RFC 3339 with exactly three fraction digits (truncated) and ``Z``; ``None`` for no time."""
    if not time_unix_nano or time_unix_nano < 0:
        return None
    seconds, nanos = divmod(time_unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos // 1_000_000:03d}Z"


def body_text(body: Any) -> str:
    """The body as a string: itself if a string; compact JSON for a map or list; ``str()`` otherwise.

    Bytes are decoded as UTF-8 (undecodable bytes replaced); no body at all is the empty string. JSON
    keys are sorted so that the same map always gives the same text.
    """
    if isinstance(body, str):
        return body
    if body is None:
        return ""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body).decode("utf-8", errors="replace")
    if isinstance(body, (Mapping, list, tuple)):
        return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=_json_default)
    return str(body)


def build_message(body: Any, attributes: Mapping[str, Any]) -> str:
    """The document's ``message``: body text, then the exception, then the session prefix in front.

    The exception goes in the message because ``message`` is all OpenReplay shows: the stack trace
    (trailing newlines removed) on a new line unless the text already contains it; else, with no
    stack trace, ``type: message`` (or the bare type). The prefix has a token part and an id part, each
    only when its value is valid (the id derived from the token if absent); parts already in front
    are never added twice.
    """
    message = body_text(body)
    stacktrace = _text(attributes.get(EXCEPTION_STACKTRACE))
    exception_type = _text(attributes.get(EXCEPTION_TYPE))
    if stacktrace is not None:
        trace = stacktrace.rstrip("\n")
        if trace and trace not in message:
            message = f"{message}\n{trace}"
    elif exception_type is not None:
        exception_message = _text(attributes.get(EXCEPTION_MESSAGE))
        detail = f"{exception_type}: {exception_message}" if exception_message else exception_type
        message = f"{message}\n{detail}"
    session = Session.of(attributes.get(TOKEN_KEY), attributes.get(SESSION_ID_KEY))
    if session is None:
        return message
    return apply_prefix(message, prefix_for(session))


def _session_token(view: RecordView) -> str | None:
    session = view.session
    return session.token if session else None


def _session_id(view: RecordView) -> str | None:
    session = view.session
    return session.id if session else None


def _replay_link(view: RecordView) -> str | None:
    """The writer's own link when it has a replay URL; else a valid incoming link of this session; else none."""
    session = view.session
    if session is None or session.id is None:
        return None
    if view.replay_url:
        return replay_link(view.replay_url, session.id, view.time_unix_nano or view.observed_time_unix_nano)
    return kept_link(view.attributes.get(URL_KEY), session.id)


def _time(view: RecordView) -> str | None:
    return format_time(view.time_unix_nano or view.observed_time_unix_nano)


def _level_tags(view: RecordView) -> list[str] | None:
    level = level_for(view.severity_number)
    return [level] if level else None


def _trace_id(view: RecordView) -> str | None:
    return f"{view.trace_id:0{_HEX_TRACE_ID}x}" if 0 < view.trace_id < 1 << 128 else None


def _span_id(view: RecordView) -> str | None:
    return f"{view.span_id:0{_HEX_SPAN_ID}x}" if 0 < view.span_id < 1 << 64 else None


def _attribute(key: str) -> Extractor:
    return lambda view: _text(view.attributes.get(key))


FIELDS: tuple[tuple[str, Extractor], ...] = (
    ("@timestamp", _time),
    ("utc_time", _time),
    ("message", lambda view: build_message(view.body, view.attributes)),
    ("tags", _level_tags),
    ("level", lambda view: level_for(view.severity_number)),
    (TOKEN_KEY, _session_token),
    (SESSION_ID_KEY, _session_id),
    (URL_KEY, _replay_link),
    ("service.name", lambda view: view.service_name),
    ("log.logger", lambda view: view.logger),
    ("log.level", lambda view: view.severity_text),
    ("error.type", _attribute(EXCEPTION_TYPE)),
    ("error.message", _attribute(EXCEPTION_MESSAGE)),
    ("error.stack_trace", _attribute(EXCEPTION_STACKTRACE)),
    ("trace.id", _trace_id),
    ("span.id", _span_id),
)
"""Every document field (dotted name) and where its value comes from, in document order."""


def flat_document(view: RecordView) -> dict[str, Any]:
    """The document with dotted keys, every field without a value left out."""
    flat: dict[str, Any] = {}
    for name, extract in FIELDS:
        value = extract(view)
        if value is not None and value != "" and value != []:
            flat[name] = value
    return flat


def expand_dotted(document: Mapping[str, Any]) -> dict[str, Any]:
    """Nest dotted keys (``{"a.b": 1}`` → ``{"a": {"b": 1}}``), recursively; drop empty objects.

    Elasticsearch treats both spellings as the same field, so documents from different writers are
    compared after this. A key that is both a value and an object (``{"a": 1, "a.b": 2}``) raises
    ``ValueError``: no document of ours has one.
    """
    nested: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            value = expand_dotted(value)
            if not value:
                continue
        parts = key.split(".") if "." in key.strip(".") else [key]
        target = nested
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"field {key!r} conflicts with a value at {part!r}")
            target = child
        leaf = parts[-1]
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf] = _merge(target[leaf], value, key)
        elif leaf in target:
            raise ValueError(f"field {key!r} is given twice")
        else:
            target[leaf] = value
    return nested


def to_document(
    record: Any, min_severity: int = DEFAULT_MIN_SEVERITY_NUMBER, replay_url: str | None = None
) -> dict[str, Any] | None:
    """The nested Elasticsearch document for ``record``, or ``None`` below ``min_severity``.

    A record without a severity number counts as severity 0 and is never written. ``replay_url`` is
    the writer's validated ``OTEL_OPENREPLAY_REPLAY_URL`` (see :mod:`otel_openreplay.replay`).
    """
    view = view_of(record, replay_url)
    if view.severity_number < min_severity or view.severity_number < 1:
        return None
    return expand_dotted(flat_document(view))


def document_id(record: Any) -> str:
    """A deterministic id (sha256 hex) so that a retried batch creates each document only once.

    Hashes the record's time, observed time, trace and span id, severity, body, service name, logger
    and attributes: two distinct records share an id only if all of these are equal. (Attributes are
    included because records logged in the same instant with the same text, such as the same error
    with different exceptions, must not collapse into one document.)
    """
    view = view_of(record)
    key = [
        view.time_unix_nano,
        view.observed_time_unix_nano,
        view.trace_id,
        view.span_id,
        view.severity_number,
        body_text(view.body),
        view.service_name,
        view.logger,
        body_text(dict(view.attributes)),
    ]
    return hashlib.sha256(json.dumps(key, separators=(",", ":")).encode("utf-8")).hexdigest()


def _merge(left: dict[str, Any], right: dict[str, Any], key: str) -> dict[str, Any]:
    merged = dict(left)
    for name, value in right.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value, f"{key}.{name}")
        elif name in merged:
            raise ValueError(f"field {key}.{name!r} is given twice")
        else:
            merged[name] = value
    return merged


def _text(value: Any) -> str | None:
    """A non-empty string for a value, or ``None``: attributes may hold non-string values."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
