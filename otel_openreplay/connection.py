"""Elasticsearch connection settings and the client factory, shared by the exporter and the CLI.

The ``OPENREPLAY_ES_*`` variables and ``OPENREPLAY_MIN_SEVERITY_NUMBER`` are the same names the
collector config reads, so one environment drives both export paths. Each default is stated once,
below, as a named constant; :data:`SPECS` is the table the README's settings table is tested against.

It imports the Elasticsearch client only when a client is made, so that :mod:`otel_openreplay.layout`
can read the defaults without it. This module must never log, print or ``repr`` a secret (the API key,
the password, credentials in a URL): :meth:`ConnectionSettings.describe` and :func:`redact_url` exist
for that. A bad value raises
:class:`~otel_openreplay.settings.SettingsError` naming the variable, when the settings are built.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from otel_openreplay.compat import client_mismatch
from otel_openreplay.settings import SettingsError, Spec, read_specs

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

OPENREPLAY_ES_URL = "OPENREPLAY_ES_URL"
"""Elasticsearch URL, ``scheme://host:port`` (credentials in the URL are allowed, and never printed)."""

OPENREPLAY_ES_API_KEY = "OPENREPLAY_ES_API_KEY"
"""API key in its ``encoded`` form (base64 of ``id:api_key``), as the collector takes it."""

OPENREPLAY_ES_USER = "OPENREPLAY_ES_USER"
"""User for basic auth (with ``OPENREPLAY_ES_PASSWORD``); not together with an API key."""

OPENREPLAY_ES_PASSWORD = "OPENREPLAY_ES_PASSWORD"
"""Password for basic auth."""

OPENREPLAY_ES_CA_CERTS = "OPENREPLAY_ES_CA_CERTS"
"""Path of a PEM file with the CA certificate(s) that signed the server's certificate."""

OPENREPLAY_ES_INDEX = "OPENREPLAY_ES_INDEX"
"""Index the documents are written to and read from."""

OPENREPLAY_MIN_SEVERITY_NUMBER = "OPENREPLAY_MIN_SEVERITY_NUMBER"
"""Lowest OTel severity number exported (1-24)."""

DEFAULT_URL = "http://localhost:9200"
"""Where Elasticsearch is looked for when ``OPENREPLAY_ES_URL`` is unset."""

DEFAULT_INDEX = "logs"
"""The index OpenReplay ≥ 1.21 reads (hard-coded there); it also matches ≤ 1.20's default ``*log*``."""

DEFAULT_MIN_SEVERITY_NUMBER = 17
"""ERROR and above: OpenReplay ≤ 1.20 polls only ``tags: error``, and the replay is for failures."""

DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
"""Time one HTTP request to Elasticsearch may take before it counts as a connection failure."""

DEFAULT_BULK_MAX_RETRIES = 5
"""How often the bulk helper retries documents (or a whole request) answered 429 or 5xx."""

DEFAULT_BULK_INITIAL_BACKOFF_SECONDS = 0.5
"""First wait before a 429/5xx retry; doubled for each further retry of the same chunk."""

DEFAULT_BULK_MAX_BACKOFF_SECONDS = 8.0
"""Longest single wait between 429/5xx retries."""

DEFAULT_EXPORT_DEADLINE_SECONDS = 5.0
"""Time one export may spend retrying after connection errors before its documents go to the backlog.

Short, so the batch processor's queue keeps draining during an outage (its default holds 2048 records)."""

DEFAULT_BACKLOG_SIZE = 20_000
"""Documents the direct exporter keeps in memory while Elasticsearch is unreachable (about 20-60 MB)."""

_INDEX_FORBIDDEN = re.compile(r'[\\/*?"<>| ,#:A-Z]')


def _url(name: str, raw: str) -> str:
    value = raw.strip()
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise SettingsError(f"{name}={redact_url(value)!r}: not a URL ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={redact_url(value)!r}: expected http(s)://host:port, e.g. {DEFAULT_URL}")
    del port  # parsed only to reject a bad port early
    return value


def _api_key(name: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if ":" not in decoded:
        hint = " (that is id:api_key; give the base64 'encoded' form)" if ":" in value else ""
        raise SettingsError(f"{name}: not an encoded API key{hint}; expected base64 of id:api_key")
    return value


def _optional(_name: str, raw: str) -> str | None:
    return raw if raw.strip() else None


def _ca_certs(name: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not os.path.isfile(value):
        raise SettingsError(f"{name}={value!r}: no such file")
    return value


def _index(name: str, raw: str) -> str:
    value = raw.strip()
    if (
        not value
        or value in (".", "..")
        or value[0] in "-_+"
        or _INDEX_FORBIDDEN.search(value)
        or len(value.encode("utf-8")) > 255
    ):
        raise SettingsError(
            f'{name}={raw!r}: not a valid index name (lowercase, no spaces or \\/*?"<>|,#:, not starting with - _ +)'
        )
    return value


def _severity(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 24:
        raise SettingsError(f"{name}={raw!r}: expected a severity number 1-24 (17 = ERROR, 13 = WARN)")
    return value


SPECS: tuple[Spec, ...] = (
    Spec("url", OPENREPLAY_ES_URL, DEFAULT_URL, _url, "Elasticsearch URL."),
    Spec("api_key", OPENREPLAY_ES_API_KEY, "", _api_key, "API key, `encoded` form (base64 of `id:api_key`)."),
    Spec("user", OPENREPLAY_ES_USER, "", _optional, "Basic-auth user (instead of an API key)."),
    Spec("password", OPENREPLAY_ES_PASSWORD, "", _optional, "Basic-auth password."),
    Spec("ca_certs", OPENREPLAY_ES_CA_CERTS, "", _ca_certs, "PEM file of the server certificate's CA."),
    Spec("index", OPENREPLAY_ES_INDEX, DEFAULT_INDEX, _index, "Index written and read."),
    Spec(
        "min_severity_number",
        OPENREPLAY_MIN_SEVERITY_NUMBER,
        str(DEFAULT_MIN_SEVERITY_NUMBER),
        _severity,
        "Lowest severity number exported (17 = ERROR).",
    ),
)
"""Every connection setting, its variable and its default: the README table is tested against this."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Where Elasticsearch is and how to authenticate; build with :meth:`from_env`. Secrets never repr."""

    url: str = DEFAULT_URL
    api_key: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    index: str = DEFAULT_INDEX
    min_severity_number: int = DEFAULT_MIN_SEVERITY_NUMBER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ConnectionSettings:
        """Read the variables from ``environ`` (default ``os.environ``); keywords that are not ``None`` win.

        Raises :class:`SettingsError` naming the variable (or keyword) for a bad value, an unknown
        keyword, a user without a password, or both an API key and a user.
        """
        values = read_specs(SPECS, environ, overrides)
        settings = cls(**values)
        settings._check_auth()
        return settings

    def _check_auth(self) -> None:
        if (self.user is None) != (self.password is None):
            missing = OPENREPLAY_ES_PASSWORD if self.password is None else OPENREPLAY_ES_USER
            raise SettingsError(f"{missing} is not set: {OPENREPLAY_ES_USER} and {OPENREPLAY_ES_PASSWORD} go together")
        if self.api_key is not None and self.user is not None:
            raise SettingsError(
                f"both {OPENREPLAY_ES_API_KEY} and {OPENREPLAY_ES_USER} are set: choose one way to log in"
            )

    @property
    def auth_description(self) -> str:
        """How this connects, without the secret: ``API key <id>``, ``user <name>`` or ``no credentials``."""
        if self.api_key is not None:
            key_id = base64.b64decode(self.api_key).decode("utf-8").split(":", 1)[0]
            return f"API key {key_id}"
        if self.user is not None:
            return f"user {self.user}"
        if urlsplit(self.url).username:
            return f"user {urlsplit(self.url).username} (from the URL)"
        return "no credentials"

    def describe(self) -> str:
        """One line with the effective settings, secrets removed, for a start-up log or an error message."""
        return (
            f"url={redact_url(self.url)} auth={self.auth_description} index={self.index} "
            f"min_severity_number={self.min_severity_number}" + (f" ca_certs={self.ca_certs}" if self.ca_certs else "")
        )


def redact_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"


@cache
def _untraced_client_class() -> type[Elasticsearch]:
    """The official client with its native OpenTelemetry spans turned off.

    The exporter's own requests must not become spans of the application it exports for (each export
    would add a root ``bulk`` span). The client keeps the switch in a private attribute and ``options()``
    builds a fresh client of the same type, so the switch is set in ``__init__``; if a future client
    drops the attribute, nothing breaks (its spans come back).
    """
    from elasticsearch import Elasticsearch  # here: importing this module must not need the client

    class UntracedElasticsearch(Elasticsearch):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            otel = getattr(self, "_otel", None)
            if otel is not None and hasattr(otel, "enabled"):
                otel.enabled = False

    return UntracedElasticsearch


def make_client(
    settings: ConnectionSettings,
    *,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    max_retries: int = 0,
    traced: bool = False,
) -> Elasticsearch:
    """An Elasticsearch client for ``settings`` (never contacts the server: the first request does).

    ``max_retries`` is the transport's retry of a failed connection (other nodes first); the exporter
    keeps it at 0 and retries whole batches itself within a deadline. ``traced=False`` turns off the
    client's native OpenTelemetry spans.
    """
    kwargs: dict[str, Any] = {
        "request_timeout": request_timeout,
        "max_retries": max_retries,
        "retry_on_timeout": max_retries > 0,
    }
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key
    elif settings.user is not None and settings.password is not None:
        kwargs["basic_auth"] = (settings.user, settings.password)
    if settings.ca_certs is not None:
        kwargs["ca_certs"] = settings.ca_certs
    if traced:
        from elasticsearch import Elasticsearch

        return Elasticsearch(settings.url, **kwargs)
    return _untraced_client_class()(settings.url, **kwargs)


def describe_api_error(error: Any) -> str:
    """``HTTP <status> <type>: <reason>`` of an Elasticsearch error answer, naming a client/server mismatch.

    A 9.x client's ``compatible-with=9`` header is refused by an 8.x server (HTTP 400 about the media
    type): the text then ends with :func:`otel_openreplay.compat.client_mismatch`'s tip.
    """
    body = getattr(error, "body", None)
    body = body if isinstance(body, Mapping) else {}
    status = getattr(error, "status_code", None) or getattr(error, "status", "?")
    cause = body.get("error") if isinstance(body.get("error"), Mapping) else None
    if cause is not None:
        text = f"HTTP {status} {cause.get('type', '')}: {cause.get('reason', '')}"
    else:
        text = f"HTTP {status}: {getattr(error, 'message', error)}"
    mismatch = client_mismatch(error)
    if mismatch is not None:
        text += f" — {mismatch[1]}"
    return text
