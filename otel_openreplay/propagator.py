"""``OpenReplayPropagator``: the session headers of a request, into the context, and out again.

Extract reads ``X-OpenReplay-SessionToken`` / ``X-OpenReplay-Session-Token`` (token) and
``openReplaySession.id`` (decimal id), in any case, validates them and puts the session into the
context (see :mod:`otel_openreplay.session` for where). With a token and no id header the id is
derived from the token. Every WSGI/ASGI framework that OpenTelemetry instruments calls the global
propagator for each server request, so no framework needs code of its own.

Inject writes the same headers on outgoing requests, so the user's downstream services link their
logs too — unless ``propagate`` is off, and then the session stays in the process: no header, and no
W3C ``baggage`` entry either (extract moves a session that arrived in baggage out of it).

It must never raise and never store a value that failed validation: a hostile header is dropped
with a debug log. It imports only ``opentelemetry-api`` (it is loaded while
``opentelemetry.propagate`` is importing).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    DefaultGetter,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from otel_openreplay.session import Session, current_session, with_session
from otel_openreplay.settings import Settings, SettingsError

_logger = logging.getLogger(__name__)


class OpenReplayPropagator(TextMapPropagator):
    """Carries the OpenReplay session in request headers.

    Args:
        settings: header names and ``propagate``; default :meth:`Settings.from_env`. Given no
            settings and a bad environment, it logs an ERROR naming the variable and stays inert
            (a privacy setting is never silently replaced by a default).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._inert = False
        if settings is None:
            try:
                settings = Settings.from_env()
            except SettingsError as error:
                _logger.error("otel-openreplay propagator disabled: %s", error)
                settings = Settings.from_env({})
                self._inert = True
        self._settings = settings
        self._token_headers = settings.token_headers
        self._id_headers = settings.session_id_headers
        self._token_headers_any_case = _with_lowercase(settings.token_headers)
        self._id_headers_any_case = _with_lowercase(settings.session_id_headers)
        self._wsgi_token_keys = tuple(_wsgi_key(name) for name in settings.token_headers)
        self._wsgi_id_keys = tuple(_wsgi_key(name) for name in settings.session_id_headers)
        self._asgi_names = frozenset(name.lower().encode("latin-1") for name in settings.token_headers) | frozenset(
            name.lower().encode("latin-1") for name in settings.session_id_headers
        )
        self._asgi_token_rank = _ranks(settings.token_headers)
        self._asgi_id_rank = _ranks(settings.session_id_headers)
        self._asgi_lengths = frozenset(len(name) for name in self._asgi_names)
        self._plain_names = frozenset(self._token_headers_any_case + self._id_headers_any_case)
        self._propagate = settings.propagate
        self._last: tuple[str | None, str | None, Session | None, bool] = (None, None, None, False)

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        """Return ``context`` with the request's session, or the existing one moved per ``propagate``.

        It runs for every server request, so the carriers of the WSGI and ASGI instrumentations and
        plain dicts read through ``DefaultGetter`` are read in one cheap pass with the getter's
        exact semantics, and a request without a session header costs a few look-ups; any other
        getter is asked name by name.
        """
        try:
            if self._inert:
                return context if context is not None else Context()
            token: str | None = None
            session_id: str | None = None
            kind = _KINDS.get(type(getter)) or _kind_of(getter)
            if kind is _WSGI and isinstance(carrier, dict):
                for key in self._wsgi_token_keys:
                    value = carrier.get(key)
                    if value is not None:
                        token = _decode(value)
                        break
                for key in self._wsgi_id_keys:
                    value = carrier.get(key)
                    if value is not None:
                        session_id = _decode(value)
                        break
            elif kind is _ASGI and isinstance(carrier, dict):
                token, session_id = self._read_asgi(carrier.get("headers") or ())
            elif kind is _PLAIN and type(carrier) is dict:
                if not self._plain_names.isdisjoint(carrier):  # type: ignore[arg-type]
                    token, session_id = self._read_plain(carrier, getter)  # type: ignore[arg-type]
            else:
                token, session_id = self._read(carrier, getter, kind)
            if token is None and session_id is None and self._propagate:
                return context if context is not None else Context()
            return self._extracted(token, session_id, context)
        except Exception:  # a getter of a framework we never saw must not break the request
            _logger.debug("otel-openreplay: extract failed", exc_info=True)
            return context if context is not None else Context()

    def extract_asgi_scope(self, scope: Any, context: Context | None = None) -> Context:
        """:meth:`extract` for an ASGI ``scope`` read directly, without the ASGI instrumentation's getter.

        For the entry hooks (:mod:`otel_openreplay.entry_hooks`) of servers whose instrumentation
        does not make the extracted context current where the handler runs.
        """
        try:
            if self._inert or not isinstance(scope, dict):
                return context if context is not None else Context()
            token, session_id = self._read_asgi(scope.get("headers") or ())
            if token is None and session_id is None and self._propagate:
                return context if context is not None else Context()
            return self._extracted(token, session_id, context)
        except Exception:  # never break the request
            _logger.debug("otel-openreplay: extract failed", exc_info=True)
            return context if context is not None else Context()

    def _extracted(self, token: str | None, session_id: str | None, context: Context | None) -> Context:
        last = self._last  # a user's requests repeat the same headers: the last answer, reused
        if last[0] == token and last[1] == session_id:
            found, dropped = last[2], last[3]
        else:
            found = Session.of(token, session_id) if token is not None or session_id is not None else None
            # a value that did not survive validation (no second regex run: compare with what did)
            dropped = (token is not None and (found is None or found.token != token)) or (
                session_id is not None and (found is None or found.id != session_id)
            )
            self._last = (token, session_id, found, dropped)
        if dropped:
            _logger.debug("otel-openreplay: dropped an invalid session header")
        if found is None:
            if self._propagate:
                return context if context is not None else Context()
            found = current_session(context)  # from W3C baggage: validated, and moved out of baggage
            if found is None:
                return context if context is not None else Context()
        return with_session(found, context, propagate=self._propagate)

    def _read(self, carrier: CarrierT, getter: Getter[CarrierT], kind: str) -> tuple[str | None, str | None]:
        """The raw token and id header values, asked of ``getter`` name by name."""
        if kind in (_PLAIN, _MAPPING):  # a plain mapping: its keys are case-sensitive
            return (
                _first(carrier, getter, self._token_headers_any_case),
                _first(carrier, getter, self._id_headers_any_case),
            )
        return _first(carrier, getter, self._token_headers), _first(carrier, getter, self._id_headers)

    def _read_plain(self, carrier: dict[str, Any], getter: Getter[Any]) -> tuple[str | None, str | None]:
        """:meth:`_read` for ``DefaultGetter`` on a dict, without its list for the usual string value."""
        get = carrier.get
        token: str | None = None
        for name in self._token_headers_any_case:
            raw = get(name)
            if raw is not None:  # any value but a string: exactly as the getter gives it
                token = raw.strip() if isinstance(raw, str) else _first(carrier, getter, self._token_headers_any_case)
                break
        session_id: str | None = None
        for name in self._id_headers_any_case:
            raw = get(name)
            if raw is not None:
                session_id = raw.strip() if isinstance(raw, str) else _first(carrier, getter, self._id_headers_any_case)
                break
        return token, session_id

    def _read_asgi(self, headers: Any) -> tuple[str | None, str | None]:
        token: str | None = None
        session_id: str | None = None
        # The header each value came from: with two configured spellings present, the getter's
        # name-by-name read takes the one configured first (the first value under that name).
        token_name: bytes | None = None
        session_id_name: bytes | None = None
        token_rank = self._asgi_token_rank
        id_rank = self._asgi_id_rank
        names = self._asgi_names
        lengths = self._asgi_lengths
        for raw_name, raw_value in headers:
            if isinstance(raw_name, bytes):
                if len(raw_name) not in lengths:  # bytes.lower() keeps the length: cannot be one of ours
                    continue
                name = raw_name.lower()
            else:
                name = str(raw_name).lower().encode("latin-1")
            if name not in names:
                continue
            if name in token_rank and (
                token_name is None or (name != token_name and token_rank[name] < token_rank[token_name])
            ):
                token, token_name = _decode(raw_value), name
            if name in id_rank and (
                session_id_name is None or (name != session_id_name and id_rank[name] < id_rank[session_id_name])
            ):
                session_id, session_id_name = _decode(raw_value), name
        return token, session_id

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        """Write the session's headers into ``carrier``; nothing when ``propagate`` is off."""
        if self._inert or not self._settings.propagate:
            return
        try:
            found = current_session(context)
            if found is None:
                return
            if found.token is not None and self._settings.token_headers:
                setter.set(carrier, self._settings.token_headers[0], found.token)
            if found.id is not None and self._settings.session_id_headers:
                setter.set(carrier, self._settings.session_id_headers[0], found.id)
        except Exception:  # never break the user's outgoing request
            _logger.debug("otel-openreplay: inject failed", exc_info=True)

    @property
    def fields(self) -> set[str]:
        """The headers inject writes (the first of each list)."""
        if self._inert or not self._settings.propagate:
            return set()
        return set(self._settings.token_headers[:1]) | set(self._settings.session_id_headers[:1])


_WSGI = "wsgi"
_ASGI = "asgi"
_PLAIN = "plain"
"""``DefaultGetter`` itself: it reads ``carrier.get(name)``, so an exact dict can be checked in one pass."""
_MAPPING = "mapping"
"""A subclass of ``DefaultGetter`` with a ``get`` of its own: case-sensitive, asked name by name."""
_OTHER = "other"

_KINDS: dict[type, str] = {}
"""The kind of each getter class seen (a handful per process)."""


def _kind_of(getter: Getter[Any]) -> str:
    """Which read path ``getter`` allows: the instrumentations' getters are known by class name."""
    cls = type(getter)
    name = cls.__name__
    if name == "WSGIGetter":
        kind = _WSGI
    elif name == "ASGIGetter":
        kind = _ASGI
    elif isinstance(getter, DefaultGetter):
        kind = _PLAIN if cls.get is DefaultGetter.get else _MAPPING
    else:
        kind = _OTHER
    if len(_KINDS) < 64:
        _KINDS[cls] = kind
    return kind


def _with_lowercase(headers: tuple[str, ...]) -> tuple[str, ...]:
    """Each name as configured, then lowercased, for the case-sensitive getter of plain mappings."""
    out: list[str] = []
    for name in headers:
        for spelling in (name, name.lower()):
            if spelling not in out:
                out.append(spelling)
    return tuple(out)


def _ranks(headers: tuple[str, ...]) -> dict[bytes, int]:
    """Each lowercased ASGI header name's place in ``headers`` (a name listed twice keeps its first place)."""
    ranks: dict[bytes, int] = {}
    for place, name in enumerate(headers):
        ranks.setdefault(name.lower().encode("latin-1"), place)
    return ranks


def _wsgi_key(header: str) -> str:
    """The PEP 3333 environ key of a request header, as the WSGI instrumentation's getter builds it."""
    return "HTTP_" + header.upper().replace("-", "_")


def _first_key(environ: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = environ.get(key)
        if value is not None:
            return _decode(value)
    return None


def _decode(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip() if isinstance(value, str) else None


def _first(carrier: CarrierT, getter: Getter[CarrierT], names: tuple[str, ...]) -> str | None:
    """The first value found under any of ``names``, stripped; ``None`` when none is present."""
    for name in names:
        values = getter.get(carrier, name)
        if values:
            return _decode(values[0])
    return None
