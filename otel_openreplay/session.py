"""The OpenReplay session: what it is, how it is validated, where it lives in the context.

This module is the one place that knows the session's two names (``openReplaySessionToken`` and
``openReplaySession.id``), what a valid value looks like, how the id is derived from a token, and how
the message prefix is written. Everything else (propagator, processors, layout) calls it.

It must never raise on a bad value (a bad value is simply not a session) and it may import only the
standard library and ``opentelemetry-api``: the propagator, which imports it, is loaded while
``opentelemetry.propagate`` itself is still importing.

Where the session lives: under a private context key, already validated (cheap to read on every log
record); and, when it may leave the process (``propagate=True``), also in W3C baggage, so that every
propagator that carries baggage takes it to downstream services. Readers fall back to baggage (a
session that arrived in a W3C ``baggage`` header), which they validate; then to the span current in
the context.

Why the span: a server instrumentation starts its span in the context it extracted from the request,
but not every one makes that context current. aiohttp's server middleware calls
``start_as_current_span(..., context=extract(request))``: the span is current in the handler, the
extracted context (our key, the baggage) is not. :class:`~otel_openreplay.span_processor.OpenReplaySpanProcessor`
already works out the session of every span's parent context when the span starts, and keeps it on
the span (:func:`keep_on_span`); a reader that finds neither our key nor baggage asks the current
span (:func:`session_of_span`). Child spans inherit it the same way, and so do threads, tasks and
outgoing requests (the propagator injects our headers from it). W3C ``baggage`` is not written from
it: downstream services get the session through our headers only. A span started without a session
keeps none, so a request without the header is never tagged, and a span is current only in its own
request's context, so one request's session never reaches another. A span the sampler drops is a
``NonRecordingSpan`` that no span processor sees: it keeps nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context

TOKEN_KEY = "openReplaySessionToken"
"""Attribute and baggage key of the session token (read by OpenReplay ≤ 1.20)."""

SESSION_ID_KEY = "openReplaySession.id"
"""Attribute and baggage key of the decimal session id (read by OpenReplay ≥ 1.21)."""

TOKEN_PART = "[openReplaySessionToken="
SESSION_ID_PART = "[openReplaySession.id="

_TOKEN_RE = re.compile(r"[0-9A-Za-z._-]{1,256}")
_SESSION_ID_RE = re.compile(r"[0-9]{1,20}")
_BASE36_RE = re.compile(r"[0-9A-Za-z]{1,13}")
_MAX_SESSION_ID = 10**20 - 1

CONTEXT_KEY = context.create_key("otel_openreplay.session")
"""This package's own context key, holding the validated :class:`Session` (no propagator reads it).

Read it with :func:`current_session`; only the per-record hot path of the log processor reads it
directly (``ctx.get(CONTEXT_KEY)``), and only :func:`with_session` writes it."""


def valid_token(value: object) -> str | None:
    """Return ``value`` if it is a well-formed session token, else ``None``.

    A token is 1-256 characters of ``[0-9A-Za-z._-]``: nothing that could close a ``]``, start a new
    prefix part, break a line or a regex. Surrounding whitespace is not part of a token.
    """
    if isinstance(value, str) and _TOKEN_RE.fullmatch(value):
        return value
    return None


def valid_session_id(value: object) -> str | None:
    """Return ``value`` as a string if it is a well-formed session id (1-20 digits), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_SESSION_ID:
        return str(value)
    if isinstance(value, str) and _SESSION_ID_RE.fullmatch(value):
        return value
    return None


def session_id_from_token(token: str) -> str | None:
    """Derive the decimal session id from a token's first segment (base36), or ``None``.

    OpenReplay's token is ``base36(session id).base36(delay).base36(expiry).base58(HMAC)``, so the
    first segment alone tells the session. Anything that is not plain base36 gives ``None``.
    """
    first = token.split(".", 1)[0]
    if not _BASE36_RE.fullmatch(first):
        return None
    number = int(first, 36)
    return str(number) if number <= _MAX_SESSION_ID else None


@dataclass(frozen=True, slots=True)
class Session:
    """An OpenReplay session as carried through a request: a token, an id, or both (never neither)."""

    token: str | None = None
    id: str | None = None
    # The full prefix, built once: a session's records are many, and the processor runs on each.
    full_prefix: str = field(default="", init=False, repr=False, compare=False)
    # What readers derive from the session once and reuse on each of its records, by the reader's
    # own key (the log processor keeps its attributes and prefix here, per setting). Not part of
    # the session's identity; at most one entry per distinct reader configuration.
    derived: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "full_prefix", _build_prefix(self.token, self.id))

    @classmethod
    def of(cls, token: object = None, session_id: object = None) -> Session | None:
        """Validate raw values into a session, deriving the id from the token when none is given.

        Invalid values are dropped, never raised: ``None`` when nothing valid remains. Valid
        sessions are remembered (a bounded cache): a user's requests repeat the same headers.
        """
        try:  # only str/None keys are stored, and no other type equals one of those
            cached = _VALID.get((token, session_id))
        except TypeError:  # an unhashable value: validated below, never stored
            cached = None
        if cached is not None:
            return cached
        found = cls._validate(token, session_id)
        if found is not None and type(token) in _CACHEABLE and type(session_id) in _CACHEABLE:
            if len(_VALID) >= _VALID_MAX:
                _VALID.clear()
            _VALID[(token, session_id)] = found
        return found

    @classmethod
    def _validate(cls, token: object, session_id: object) -> Session | None:
        good_token = valid_token(token)
        good_id = valid_session_id(session_id)
        if good_id is None and good_token is not None:
            good_id = session_id_from_token(good_token)
        if good_token is None and good_id is None:
            return None
        return cls(good_token, good_id)


# Sessions already validated, by their raw (token, id); bounded, so hostile input cannot grow it.
_VALID: dict[tuple[object, object], Session] = {}
_VALID_MAX = 4096
_CACHEABLE = (str, type(None))


def current_session(ctx: Context | None = None) -> Session | None:
    """The session of ``ctx`` (default: the current context), validated, or ``None``.

    A session put there by this package is found under a private key, already validated. Otherwise
    baggage is read and validated again here: the W3C ``baggage`` header lets any client put
    ``openReplaySessionToken`` into baggage directly, bypassing the propagator's checks.
    """
    local = context.get_value(CONTEXT_KEY, ctx)
    if local is not None:
        return local if isinstance(local, Session) else None
    return session_in_baggage(ctx) or session_of_span(ctx)


SPAN_ATTRIBUTE = "_otel_openreplay_session"
"""The private Python attribute under which a span keeps the session it was started under."""


def keep_on_span(span: object, found: Session) -> None:
    """Keep ``found`` with ``span`` (called as the span starts, before it can be current)."""
    with contextlib.suppress(Exception):  # a span class that refuses attributes simply keeps no session
        setattr(span, SPAN_ATTRIBUTE, found)


def session_of_span(ctx: Context | None = None) -> Session | None:
    """The session kept by the span current in ``ctx`` (see :func:`keep_on_span`), or ``None``."""
    found = getattr(trace.get_current_span(ctx), SPAN_ATTRIBUTE, None)
    return found if isinstance(found, Session) else None


def session_in_baggage(ctx: Context | None = None) -> Session | None:
    """A session that came in W3C baggage (a client can set it there directly): validated, or ``None``."""
    entries = baggage.get_all(ctx)
    if entries:
        token = entries.get(TOKEN_KEY)
        session_id = entries.get(SESSION_ID_KEY)
        if token is not None or session_id is not None:
            return Session.of(token, session_id)
    return None


def with_session(session: Session, ctx: Context | None = None, *, propagate: bool = True) -> Context:
    """Return ``ctx`` carrying ``session``; also in baggage if it may ``propagate``.

    Baggage keys of a previous session are removed first, so two sessions' values never mix, and
    with ``propagate=False`` none is left there for a baggage propagator to send on.
    """
    if not (propagate and session.token is not None and session.id is not None):  # else both are overwritten
        entries = baggage.get_all(ctx)
        if TOKEN_KEY in entries or SESSION_ID_KEY in entries:
            ctx = baggage.remove_baggage(TOKEN_KEY, ctx)
            ctx = baggage.remove_baggage(SESSION_ID_KEY, ctx)
    if propagate:
        if session.token is not None:
            ctx = baggage.set_baggage(TOKEN_KEY, session.token, ctx)
        if session.id is not None:
            ctx = baggage.set_baggage(SESSION_ID_KEY, session.id, ctx)
    return context.set_value(CONTEXT_KEY, session, ctx)


@contextmanager
def session(
    token: str | None = None,
    session_id: str | int | None = None,
    *,
    propagate: bool | None = None,
) -> Iterator[Session | None]:
    """Make a session current for a block of code that is not an HTTP request (a job, a worker, a CLI).

    Logs emitted inside the block carry the session exactly as a request's would. Invalid values are
    dropped (the block then runs without a session and ``None`` is yielded), never raised.
    ``propagate`` defaults to the setting of the active :func:`otel_openreplay.configure` (so
    ``configure(propagate=False)`` holds here too); with nothing configured, to the
    ``OTEL_OPENREPLAY_PROPAGATE`` variable. A bad value there is logged once at ERROR, naming the
    variable, and the block runs with ``propagate=False``: the session still tags the block's logs but
    never leaves the process (a privacy setting is never silently replaced by the permissive default).

    An exception escaping the block remembers the session, so an error logged for it later, outside
    the block (an uncaught-exception hook, a caller's ``except``), still carries it.

    Example::

        with otel_openreplay.session(token=job.openreplay_token):
            logging.getLogger(__name__).error("payment failed")
    """
    found = Session.of(token, session_id)
    if found is None:
        yield None
        return
    if propagate is None:
        propagate = _default_propagate()
    token_ = context.attach(with_session(found, propagate=propagate))
    try:
        yield found
    except BaseException as error:
        remember(error, found)
        raise
    finally:
        context.detach(token_)


_configured_propagate: list[bool] = []
"""The ``propagate`` setting of the active :func:`otel_openreplay.configure` (set and cleared by
:mod:`otel_openreplay.wiring`, which this module may not import); empty when nothing is configured."""
_reported_bad_env: list[str] = []


def set_configured_propagate(value: bool | None) -> None:
    """Record the active wiring's ``propagate`` setting (``None``: nothing configured any more)."""
    _configured_propagate[:] = [] if value is None else [value]


def _default_propagate() -> bool:
    """``propagate`` of the active wiring; else ``OTEL_OPENREPLAY_PROPAGATE``; ``False`` if that is bad."""
    configured = _configured_propagate
    if configured:
        return configured[0]
    from otel_openreplay.settings import OTEL_OPENREPLAY_PROPAGATE, SPECS, SettingsError, read_specs

    try:
        specs = tuple(spec for spec in SPECS if spec.env == OTEL_OPENREPLAY_PROPAGATE)
        return bool(read_specs(specs, None, {})["propagate"])
    except SettingsError as error:
        raw = os.environ.get(OTEL_OPENREPLAY_PROPAGATE, "")
        if _reported_bad_env != [raw]:  # once per bad value, not once per job
            _reported_bad_env[:] = [raw]
            logging.getLogger(__name__).error(
                "otel-openreplay: %s; sessions of otel_openreplay.session() stay in the process", error
            )
        return False


_EXCEPTION_ATTR = "__otel_openreplay_session__"


def remember(error: BaseException, found: Session) -> None:
    """Attach ``found`` to an exception leaving its session, unless it already remembers one."""
    try:
        if getattr(error, _EXCEPTION_ATTR, None) is None:
            setattr(error, _EXCEPTION_ATTR, found)
    except Exception:  # noqa: S110  an exception type that refuses attributes simply keeps no session
        pass


def remembered(error: object) -> Session | None:
    """The session an exception left with (see :func:`remember`), or ``None``."""
    found = getattr(error, _EXCEPTION_ATTR, None)
    return found if isinstance(found, Session) else None


def prefix_for(session: Session, *, token: bool = True, session_id: bool = True) -> str:
    """The message prefix for ``session``: a part only for each value known (and wanted)."""
    if token and session_id:
        return session.full_prefix
    return _build_prefix(session.token if token else None, session.id if session_id else None)


def _build_prefix(token: str | None, session_id: str | None) -> str:
    prefix = ""
    if token is not None:
        prefix = f"{TOKEN_PART}{token}] "
    if session_id is not None:
        prefix += f"{SESSION_ID_PART}{session_id}] "
    return prefix


def apply_prefix(message: str, prefix: str) -> str:
    """Prefix ``message``, never twice: the one rule both export paths share.

    If the message already starts with ``prefix`` it is returned unchanged. Otherwise a leading
    token part, then a leading id part, equal to the ones in ``prefix`` are removed before the whole
    prefix is put in front, so a message that carries only some of the parts gets the rest once.
    """
    if not prefix or message.startswith(prefix):
        return message
    if message.startswith(TOKEN_PART) or message.startswith(SESSION_ID_PART):
        for part in _parts(prefix):
            if message.startswith(part):
                message = message[len(part) :]
    return prefix + message


def _parts(prefix: str) -> Iterator[str]:
    start = 0
    while start < len(prefix):
        end = prefix.index("] ", start) + 2
        yield prefix[start:end]
        start = end
