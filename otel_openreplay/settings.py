"""Settings of the in-process side: one ``OTEL_OPENREPLAY_*`` variable and one keyword argument each.

Every setting, its default and its meaning are stated once, in ``SPECS`` below; the README's table
is tested against it. ``Settings.from_env(**overrides)`` reads the environment, applies keyword
overrides and validates: a bad value raises :class:`SettingsError` naming the variable, at start-up.

This module must import nothing but the standard library (and :mod:`otel_openreplay.replay` and
:mod:`otel_openreplay.settings_error`, which import only that too): the propagator reads it while
``opentelemetry.propagate`` is still importing. The module-level ``OTEL_OPENREPLAY_*`` constants
also give ``opentelemetry-instrument`` a ``--openreplay_*`` flag each (entry point group
``opentelemetry_environment_variables``).

The Elasticsearch connection settings (``OPENREPLAY_ES_*``) are shared with the collector config
and live in :mod:`otel_openreplay.connection`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from otel_openreplay.replay import parse_replay_url
from otel_openreplay.settings_error import SettingsError as SettingsError  # re-exported: its home for importers

OTEL_OPENREPLAY_TOKEN_HEADERS = "OTEL_OPENREPLAY_TOKEN_HEADERS"
"""Comma-separated request headers that carry the session token (any case)."""

OTEL_OPENREPLAY_SESSION_ID_HEADERS = "OTEL_OPENREPLAY_SESSION_ID_HEADERS"
"""Comma-separated request headers that carry the decimal session id (any case)."""

OTEL_OPENREPLAY_PREFIX = "OTEL_OPENREPLAY_PREFIX"
"""Which message-prefix parts to write: ``token,id``, ``token``, ``id`` or ``none``."""

OTEL_OPENREPLAY_PROPAGATE = "OTEL_OPENREPLAY_PROPAGATE"
"""Whether outgoing requests carry the session (our headers and W3C baggage)."""

OTEL_OPENREPLAY_CAPTURE_EXCEPTIONS = "OTEL_OPENREPLAY_CAPTURE_EXCEPTIONS"
"""Whether uncaught exceptions are logged at ERROR, and errors logged after a request keep its session."""

OTEL_OPENREPLAY_SPAN_ATTRIBUTES = "OTEL_OPENREPLAY_SPAN_ATTRIBUTES"
"""Whether spans started under a session get the session attributes."""

OTEL_OPENREPLAY_REPLAY_URL = "OTEL_OPENREPLAY_REPLAY_URL"
"""OpenReplay dashboard URL with the project id; set, records and spans get a link to their replay."""

OTEL_OPENREPLAY_LOGURU = "OTEL_OPENREPLAY_LOGURU"
"""Whether loguru's records are sent to OpenTelemetry (where loguru is installed)."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PREFIX_PARTS = ("token", "id")


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _headers(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    for header in names:
        if not _HEADER_NAME.fullmatch(header):
            raise SettingsError(f"{name}: {header!r} is not a valid HTTP header name")
    return names


def _prefix(name: str, raw: str) -> tuple[str, ...]:
    value = raw.strip().lower()
    if value in ("none", "false", "off", ""):
        return ()
    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [part for part in parts if part not in _PREFIX_PARTS]
    if unknown:
        raise SettingsError(f"{name}={raw!r}: unknown part {unknown[0]!r}; expected token,id | token | id | none")
    return tuple(part for part in _PREFIX_PARTS if part in parts)


@dataclass(frozen=True)
class Spec:
    """One setting: its keyword, its variable, its default as written in the environment, its parser."""

    keyword: str
    env: str
    default: str
    parse: Callable[[str, str], Any]
    doc: str


SPECS: tuple[Spec, ...] = (
    Spec(
        "token_headers",
        OTEL_OPENREPLAY_TOKEN_HEADERS,
        "X-OpenReplay-SessionToken,X-OpenReplay-Session-Token",
        _headers,
        "Request headers read for the session token, any case. The first is written on outgoing requests.",
    ),
    Spec(
        "session_id_headers",
        OTEL_OPENREPLAY_SESSION_ID_HEADERS,
        "openReplaySession.id",
        _headers,
        "Request headers read for the decimal session id, any case. The first is written on outgoing requests.",
    ),
    Spec(
        "prefix",
        OTEL_OPENREPLAY_PREFIX,
        "token,id",
        _prefix,
        "Message prefix parts: `token,id` (OpenReplay ≤1.20 and ≥1.21), `token`, `id`, or `none`.",
    ),
    Spec(
        "propagate",
        OTEL_OPENREPLAY_PROPAGATE,
        "true",
        _bool,
        "Outgoing requests carry the session (our headers and W3C baggage). `false` keeps it in the process.",
    ),
    Spec(
        "capture_exceptions",
        OTEL_OPENREPLAY_CAPTURE_EXCEPTIONS,
        "true",
        _bool,
        "Log uncaught exceptions (main thread, threads) at ERROR; keep the session on errors logged after "
        "the request context is gone (uvicorn's `Exception in ASGI application`).",
    ),
    Spec(
        "span_attributes",
        OTEL_OPENREPLAY_SPAN_ATTRIBUTES,
        "true",
        _bool,
        "Put the session attributes on spans started under a session (server spans included).",
    ),
    Spec(
        "replay_url",
        OTEL_OPENREPLAY_REPLAY_URL,
        "",
        parse_replay_url,
        "OpenReplay dashboard URL with the project id (`https://openreplay.example.com/3`). Set, every record "
        "and span of a session gets `openReplaySession.url`, its replay opened at that moment. Unset: off.",
    ),
    Spec(
        "loguru",
        OTEL_OPENREPLAY_LOGURU,
        "true",
        _bool,
        "Send loguru's records to OpenTelemetry, each once, whichever of loguru's documented set-ups the app "
        "uses ([Using loguru and structlog](#using-loguru-and-structlog)). Only where loguru is installed.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The effective settings. Build with :meth:`from_env`; the field defaults below mirror ``SPECS``."""

    token_headers: tuple[str, ...]
    session_id_headers: tuple[str, ...]
    prefix: tuple[str, ...]
    propagate: bool
    capture_exceptions: bool
    span_attributes: bool
    replay_url: str | None = None
    loguru: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``OTEL_OPENREPLAY_*`` from ``environ`` (default ``os.environ``); keywords win over both.

        Raises :class:`SettingsError` for a bad value or an unknown keyword.
        """
        values = read_specs(SPECS, environ, overrides, coerce=_coerce)
        return cls(**values)

    def describe(self) -> str:
        """One line with every effective setting (none of them is a secret), for a start-up debug log."""
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))


def read_specs(
    specs: tuple[Spec, ...],
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
    *,
    coerce: Callable[[Spec, Any], Any] | None = None,
) -> dict[str, Any]:
    """Each spec's value by keyword: a non-``None`` keyword override, else its variable, else its default.

    Raises :class:`SettingsError` for an unknown keyword or a bad value. ``coerce`` turns an override
    into the setting's type (default: parse its string form, as the variable would be).
    """
    env = os.environ if environ is None else environ
    known = {spec.keyword for spec in specs}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for spec in specs:
        override = overrides.get(spec.keyword)
        if override is None:
            values[spec.keyword] = spec.parse(spec.env, env.get(spec.env, spec.default))
        elif coerce is not None:
            values[spec.keyword] = coerce(spec, override)
        else:
            values[spec.keyword] = spec.parse(spec.keyword, str(override))
    return values


def _coerce(spec: Spec, value: Any) -> Any:
    """Accept a keyword argument in its natural Python type, or as the env-var string form."""
    if isinstance(value, str):
        return spec.parse(spec.keyword, value)
    if spec.parse is _bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{spec.keyword}={value!r}: expected True or False")
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        joined = ",".join(value)
        return spec.parse(spec.keyword, joined or "none" if spec.parse is _prefix else joined)
    raise SettingsError(f"{spec.keyword}={value!r}: expected a string or a list of strings")
