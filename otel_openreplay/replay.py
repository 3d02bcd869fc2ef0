"""The replay link: from a session id and a moment to the URL that opens the replay at that moment.

OpenReplay's replay lives at ``<dashboard>/<project id>/session/<session id>``; ``?jumpto=<ms>`` opens
it that many milliseconds after the session's start (the tracker's own
``getSessionURL({withCurrentTime: true})`` builds it the same way). The session id is a flake id,
``(start ms - 1550000000000) << 24 | shard << 8 | seq`` (OpenReplay's backend/pkg/flakeid), so the
id alone tells when the session started; no call to OpenReplay is needed.

The dashboard part (``OTEL_OPENREPLAY_REPLAY_URL``, e.g. ``https://openreplay.example.com/3``) is
validated by :func:`parse_replay_url`; :class:`ReplayLinks` builds links for one dashboard, caching
each session's base URL and start so the per-record work is one dict lookup and one subtraction.

Everything here is pure: no I/O, no clock, no environment. It imports only the standard library and
:mod:`otel_openreplay.settings_error` (the settings module, which the propagator loads early, uses it).
It never raises on a strange session id or time: those give a link without ``jumpto``, or no link. The
link is never part of the message prefix (OpenReplay searches the prefix) and never goes into baggage or
outgoing headers.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from otel_openreplay.settings_error import SettingsError

URL_KEY = "openReplaySession.url"
"""Attribute and document field of the replay link (Elasticsearch: ``keyword``)."""

FLAKE_EPOCH_MS = 1_550_000_000_000
"""OpenReplay's flake-id epoch (backend/pkg/flakeid): a session id's top bits count ms from here."""

FLAKE_TIME_SHIFT = 24
"""Bits below the time in a flake id (16 of shard, 8 of sequence)."""

MAX_JUMPTO_MS = 86_400_000
"""The longest offset written as ``jumpto`` (a day); beyond it the id is not a flake id, or the clock is wrong."""

_SESSION_ID_RE = re.compile(r"[0-9]{1,20}")
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")
# RE2's \s is [\t\n\f\r ]: spelt out, so both export paths keep exactly the same links.
_KEPT_LINK = re.compile(r'https?://[^\t\n\f\r "]+/session/([0-9]{1,20})(?:\?jumpto=[0-9]+)?')
_MAX_LINKS = 4096
_PROJECT_PATH = re.compile(r"/[0-9]+\Z")


def parse_replay_url(name: str, raw: str) -> str | None:
    """Validate the dashboard URL with its project (``https://host/3``); ``None`` when empty (feature off).

    Accepted: an absolute ``http://`` or ``https://`` URL with a host whose path ends with the numeric
    project id (``/3``, ``/openreplay/3``), no query, no fragment and no whitespace; surrounding
    whitespace is ignored and a trailing ``/`` is dropped. Anything else raises
    :class:`~otel_openreplay.settings_error.SettingsError` naming ``name``, with an example.
    """
    value = raw.strip()
    if not value:
        return None
    expected = "expected the dashboard URL with the project id, e.g. https://openreplay.example.com/3"
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise SettingsError(f"{name}={value!r}: contains whitespace; {expected}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  parsed only to reject a bad port
    except ValueError as error:
        raise SettingsError(f"{name}={value!r}: not a URL ({error}); {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={value!r}: not an absolute http(s) URL with a host; {expected}")
    if "?" in value or "#" in value:
        raise SettingsError(f"{name}={value!r}: has a query or fragment; {expected}")
    if not _PROJECT_PATH.search(parts.path.rstrip("/")):
        raise SettingsError(f"{name}={value!r}: the path does not end with the numeric project id; {expected}")
    return value.rstrip("/")


def session_start_ms(session_id: str | int) -> int | None:
    """When the session started (epoch ms), read from its flake id; ``None`` for a value that is no id.

    Any 1-20 digit id gives a number; an id that is not a flake id gives a start in 2019 (``"42"``) or
    far in the future (a huge id), which :func:`jumpto_ms` then refuses.
    """
    if isinstance(session_id, bool):
        return None
    if isinstance(session_id, int):
        number = session_id
    elif isinstance(session_id, str) and _SESSION_ID_RE.fullmatch(session_id):
        number = int(session_id)
    else:
        return None
    if number < 0:
        return None
    return (number >> FLAKE_TIME_SHIFT) + FLAKE_EPOCH_MS


def jumpto_ms(start_ms: int | None, time_unix_nano: int | None) -> int | None:
    """Milliseconds from the session's start to the record's time, if that is a sane offset, else ``None``.

    Sane: the record has a time, and the offset is 0 to :data:`MAX_JUMPTO_MS` (a day) inclusive.
    """
    if start_ms is None or not time_unix_nano or time_unix_nano < 0:
        return None
    offset = time_unix_nano // 1_000_000 - start_ms
    return offset if 0 <= offset <= MAX_JUMPTO_MS else None


def session_url(replay_url: str, session_id: str) -> str:
    """The replay's URL without ``jumpto``: ``<replay_url>/session/<session_id>``."""
    return f"{replay_url}/session/{session_id}"


def replay_link(replay_url: str, session_id: str, time_unix_nano: int | None = None) -> str:
    """The replay's URL for ``session_id``, opened at ``time_unix_nano`` when that is a sane offset."""
    base = session_url(replay_url, session_id)
    offset = jumpto_ms(session_start_ms(session_id), time_unix_nano)
    return base if offset is None else f"{base}?jumpto={offset}"


def parse_moment(text: str) -> int:
    """A moment given as RFC 3339 (``2026-11-26T14:07:34.120Z``, zone required) or epoch ms, in epoch ns.

    Raises ``ValueError`` saying what is expected.
    """
    value = text.strip()
    if value.isdigit():
        return int(value) * 1_000_000
    found = _RFC3339.fullmatch(value)
    if found is None:
        raise ValueError(f"{text!r} is not a time: give RFC 3339 with a zone (2026-11-26T14:07:34.120Z) or epoch ms")
    whole, fraction, zone = found.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(whole.replace("t", "T").replace(" ", "T") + zone)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a valid time ({error})") from None
    nanos = int((fraction or "").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def kept_link(value: object, session_id: str | None) -> str | None:
    """``value`` if it is a replay link of ``session_id`` (as a writer without the setting keeps it), else ``None``.

    The form is ``^https?://[^\\s"]+/session/<session_id>(\\?jumpto=[0-9]+)?$``, ``\\s`` read as RE2 reads
    it (the collector's OTTL does the same check): a link for another session, or anything else, is not kept.
    """
    if not isinstance(value, str) or session_id is None:
        return None
    found = _KEPT_LINK.fullmatch(value)
    return value if found is not None and found.group(1) == session_id else None


class ReplayLinks:
    """Builds replay links for one dashboard URL, remembering each session's base URL and start.

    A bounded cache (cleared when full): the same sessions come back record after record, and hostile
    input cannot grow it. Safe to share between threads (a lost insert only costs a recomputation).
    """

    __slots__ = ("_cache", "replay_url")

    def __init__(self, replay_url: str) -> None:
        self.replay_url = replay_url
        self._cache: dict[str, tuple[str, int | None]] = {}

    def link(self, session_id: str, time_unix_nano: int | None) -> str:
        """The link for ``session_id`` (a validated id) at ``time_unix_nano`` (``None``: no ``jumpto``)."""
        cached = self._cache.get(session_id)
        if cached is None:
            cached = (session_url(self.replay_url, session_id), session_start_ms(session_id))
            if len(self._cache) >= _MAX_LINKS:
                self._cache.clear()
            self._cache[session_id] = cached
        base, start = cached
        offset = jumpto_ms(start, time_unix_nano)
        return base if offset is None else f"{base}?jumpto={offset}"
