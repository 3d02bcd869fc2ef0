"""OpenReplay's two query generations: the searches exactly as OpenReplay sends them, and how each reads the answers.

≤ 1.20 (the token poller) polls the configured index with a bool filter on ``message``/``utc_time``/``tags``,
``sort=utc_time:asc`` and ``scroll=2m`` as URL parameters, 1000 per page, and pulls the token out of
``message`` with its regex; it skips a record whose ``utc_time`` is not RFC 3339. ≥ 1.21 reads one session
with ``match_phrase`` on ``message`` in the index ``logs`` and its log panel derives the level from
``level``. docs/DESIGN.md ("Facts about OpenReplay") is the source; keep these functions identical to it.

Pure functions and data, and the two fetches that send the searches as OpenReplay does (read-only; the
doctor, :mod:`otel_openreplay.doctor`, turns their errors into findings and reports). Never writes to
Elasticsearch, never prints or logs anything.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from otel_openreplay.session import session_id_from_token, valid_session_id, valid_token

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

LEGACY = "1.20"
"""Name of the ≤ 1.20 generation (token poller) in reports."""

CURRENT = "1.21"
"""Name of the ≥ 1.21 generation (per-session ``match_phrase``) in reports."""

CURRENT_INDEX = "logs"
"""The index OpenReplay ≥ 1.21 reads, whatever its settings say."""

LEGACY_TOKEN_RE = re.compile(r"(?i)openReplaySessionToken=([0-9a-zA-Z\.]+)")
"""OpenReplay ≤ 1.20's regex for the token in ``message``: note it stops at ``-``."""

LEGACY_FIRST_POLL_SECONDS = 24 * 3600
"""How far back OpenReplay ≤ 1.20's first poll looks (later polls start after the newest seen)."""

PAGE_SIZE = 1000
"""Hits per page, as both generations ask."""

MAX_SCROLL_PAGES = 20
"""Pages of ≤ 1.20's scroll read at most (20 000 records)."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_UI_LEVELS = ("error", "warning", "info", "debug")

PANEL_BREAKERS = frozenset({"no-level"})
"""Finding codes that fail ≥ 1.21's whole log panel for the session, whatever else is found."""


@dataclass(frozen=True)
class Target:
    """The session asked about: a token (its id derived when possible) or a decimal session id."""

    token: str | None
    session_id: str | None

    @classmethod
    def of(cls, token: str | None = None, session_id: str | None = None) -> Target:
        """Validate; raises ``ValueError`` with what is wrong (no value, or a malformed one)."""
        if token is not None:
            if valid_token(token) is None:
                raise ValueError(f"{token!r} is not a session token (1-256 of 0-9 A-Z a-z . _ -)")
            return cls(token, session_id_from_token(token))
        if session_id is not None:
            if valid_session_id(session_id) is None:
                raise ValueError(f"{session_id!r} is not a session id (1-20 digits)")
            return cls(None, session_id)
        raise ValueError("give a session token or a session id")

    def describe(self) -> str:
        """``token T (session id N)`` or ``session id N``."""
        if self.token is None:
            return f"session id {self.session_id}"
        suffix = f" (session id {self.session_id})" if self.session_id else ""
        return f"token {self.token}{suffix}"


@dataclass(frozen=True)
class Entry:
    """One record as the replay would show it."""

    time: str
    level: str
    message: str


@dataclass(frozen=True)
class Finding:
    """Something the doctor found; ``problem`` when it keeps records off the replay, else a note."""

    code: str
    text: str
    tip: str = ""
    problem: bool = True


@dataclass
class Generation:
    """What one OpenReplay generation would show for the target, and why not more."""

    name: str
    title: str
    index: str
    request: dict[str, Any]
    shown: list[Entry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the replay shows records: some are found and none breaks the panel."""
        return bool(self.shown) and not any(f.problem and f.code in PANEL_BREAKERS for f in self.findings)


# --- OpenReplay's requests, as they send them -----------------------------------------------------


def legacy_request(index: str, since_ms: int) -> dict[str, Any]:
    """OpenReplay ≤ 1.20's poll: ``POST /<index>/_search?scroll=2m&sort=utc_time:asc`` with this body."""
    return {
        "method": "POST",
        "path": f"/{index}/_search",
        "params": {"scroll": "2m", "sort": "utc_time:asc", "size": PAGE_SIZE},
        "body": {
            "query": {
                "bool": {
                    "filter": [
                        {"match": {"message": {"query": "openReplaySessionToken="}}},
                        {"range": {"utc_time": {"gte": since_ms, "lte": "now"}}},
                        {"term": {"tags": "error"}},
                    ]
                }
            }
        },
    }


def current_request(session_id: str) -> dict[str, Any]:
    """OpenReplay ≥ 1.21's read: ``POST /logs/_search?track_total_hits=true`` with ``match_phrase``."""
    return {
        "method": "POST",
        "path": f"/{CURRENT_INDEX}/_search",
        "params": {"track_total_hits": "true"},
        "body": {
            "size": PAGE_SIZE,
            "query": {"match_phrase": {"message": f"openReplaySession.id={session_id}"}},
        },
    }


def fetch_legacy(client: Elasticsearch, index: str, request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The hits of ≤ 1.20's poll (``request``, from :func:`legacy_request`), paged through its scroll as
    OpenReplay pages. Clears the scroll (OpenReplay does not); raises the client's errors."""
    from elasticsearch import ApiError  # here: keep this module light

    hits: list[Mapping[str, Any]] = []
    scroll_id: str | None = None
    try:
        answer = client.search(
            index=index,
            query=request["body"]["query"],
            size=PAGE_SIZE,
            sort=request["params"]["sort"],
            scroll=request["params"]["scroll"],
        ).body
        for _ in range(MAX_SCROLL_PAGES):
            page = answer.get("hits", {}).get("hits", [])
            scroll_id = answer.get("_scroll_id", scroll_id)
            hits += page
            if len(page) < PAGE_SIZE or scroll_id is None:
                break
            answer = client.scroll(scroll_id=scroll_id, scroll="2m").body
    finally:
        if scroll_id is not None:
            with contextlib.suppress(ApiError):  # OpenReplay never clears its scrolls; they expire after 2 min
                client.clear_scroll(scroll_id=scroll_id)
    return hits


def fetch_current(client: Elasticsearch, request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The hits of ≥ 1.21's read (``request``, from :func:`current_request`); raises the client's errors."""
    body = request["body"]
    answer = client.search(index=CURRENT_INDEX, size=body["size"], query=body["query"], track_total_hits=True).body
    return list(answer.get("hits", {}).get("hits", []))


# --- How OpenReplay reads the answers -------------------------------------------------------------


def legacy_token(message: str) -> str | None:
    """The token OpenReplay ≤ 1.20 pulls out of ``message`` (its regex), or ``None``."""
    found = LEGACY_TOKEN_RE.search(message)
    return found.group(1) if found else None


def parse_rfc3339(value: Any) -> datetime | None:
    """``value`` parsed as Go's ``time.RFC3339`` would (fraction optional, ``Z`` or offset), else ``None``."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    text = value.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # Python wants at most 6 fraction digits
        digits = re.match(r"\d+", rest)
        fraction = digits.group(0) if digits else ""
        text = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction) :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def ui_level(level: Any) -> str | None:
    """The status OpenReplay ≥ 1.21's panel shows for a record's ``level``, or ``None`` when it breaks the panel.

    Its frontend (``BackendLogs/utils.ts``) calls ``level.includes(name)`` for error, warning, info, debug
    in turn and takes the first that matches, ``info`` when none does: on a string that is a substring
    test, case-sensitive (``ERROR``, ``fatal`` and ``warn`` show as info); on a list, an element test.
    Anything else (no ``level``, a number, an object) has no ``includes``: the call throws and the whole
    panel fails ("Failed to fetch logs from Elasticsearch"), for every record of the session.
    """
    if isinstance(level, (str, list)):
        return next((name for name in _UI_LEVELS if name in level), "info")
    return None


def _belongs_to(token: str | None, target: Target) -> bool:
    """Whether ≤ 1.20 would attribute a record with this extracted ``token`` to the target's session."""
    if token is None:
        return False
    if target.token is not None:
        return token == target.token
    return token == target.session_id or session_id_from_token(token) == target.session_id


def legacy_view(hits: Iterable[Mapping[str, Any]], target: Target) -> tuple[list[Entry], list[Finding]]:
    """What ≤ 1.20 shows of its poll's hits for the target, and the notes on hits it skips."""
    shown: list[Entry] = []
    findings: list[Finding] = []
    for hit in hits:
        source = hit.get("_source", {})
        message = source.get("message")
        if not isinstance(message, str):
            continue
        token = legacy_token(message)
        if not _belongs_to(token, target):
            if target.token and target.token in message and token != target.token:
                findings.append(token_dash_finding(target.token, token))
            continue
        moment = parse_rfc3339(source.get("utc_time"))
        if moment is None:
            findings.append(bad_time_finding(source.get("utc_time")))
            continue
        shown.append(Entry(str(source.get("utc_time")), "error", message))
    return shown, unique_findings(findings)


def current_view(hits: Iterable[Mapping[str, Any]]) -> tuple[list[Entry], list[Finding]]:
    """What ≥ 1.21's panel shows of its hits, and the problems of the ones it shows badly.

    One hit whose ``level`` breaks the panel (see :func:`ui_level`) fails the whole panel: the
    ``no-level`` finding is a problem, and :attr:`Generation.ok` is false however many hits are fine.
    """
    shown: list[Entry] = []
    findings: list[Finding] = []
    breaking = 0
    for hit in hits:
        source = hit.get("_source", {})
        message = source.get("message")
        if not isinstance(message, str):
            continue
        level = source.get("level")
        shown_level = ui_level(level)
        if shown_level is None:
            breaking += 1
            shown_level = "?"
        elif shown_level == "info" and "info" not in level:
            findings.append(level_as_info_finding(level))
        shown.append(Entry(str(source.get("@timestamp", "")), shown_level, message))
    if breaking:
        findings.insert(0, no_level_finding(breaking, len(shown)))
    if len(shown) >= PAGE_SIZE:
        findings.append(
            Finding(
                "page-full",
                f"OpenReplay ≥ 1.21 shows at most {PAGE_SIZE} records per session, the most relevant to its "
                "search, not the first or the last in time: this session may have more that it never shows",
                problem=False,
            )
        )
    return shown, unique_findings(findings)


def no_level_finding(breaking: int, total: int) -> Finding:
    """Records without a ``level`` the panel can read fail ≥ 1.21's whole panel for the session."""
    return Finding(
        "no-level",
        f"{breaking} of {total} record{'s' if total != 1 else ''} ha{'ve' if breaking != 1 else 's'} no `level` "
        "(or one that is neither text nor a list): OpenReplay ≥ 1.21's log panel fails on the whole session "
        '("Failed to fetch logs from Elasticsearch") and shows none of them',
        "write `level` (error, warning, info or debug, in lowercase) on every document, as the exporter and the "
        "collector config do; documents already written stay broken until they are deleted or updated",
    )


def level_as_info_finding(level: Any) -> Finding:
    """A ``level`` without a lowercase error/warning/info/debug in it shows as info."""
    capitals = isinstance(level, str) and any(name in level.lower() for name in _UI_LEVELS)
    return Finding(
        "uppercase-level" if capitals else "unknown-level",
        f"`level` is {level!r}: OpenReplay ≥ 1.21 shows it as info (it looks for error, warning, info or debug, "
        "in lowercase, in it)",
        "write the level in lowercase: `error` (FATAL and CRITICAL too), `warning`, `info` or `debug`",
        problem=False,
    )


def token_dash_finding(token: str, cut: str | None) -> Finding:
    """≤ 1.20's regex stops at ``-``: it reads only ``cut`` of ``token``, so the record is not attributed."""
    return Finding(
        "token-dash",
        f"the token contains `-`: OpenReplay ≤ 1.20's regex reads only {cut!r} of {token!r}, so the token "
        "does not match and the record is dropped",
        "nothing to change on this side: ≤ 1.20 cannot read tokens with a negative delay; "
        "≥ 1.21 (session id) "
        "finds these records",
    )


def bad_time_finding(value: Any) -> Finding:
    """≤ 1.20 skips a record whose ``utc_time`` is not RFC 3339."""
    return Finding(
        "bad-utc-time",
        f"`utc_time` {value!r} is not RFC 3339: OpenReplay ≤ 1.20 skips the record",
        "write UTC times such as 2026-11-26T14:07:34.120Z",
    )


def unique_findings(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` in order, each (code, text) once."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        key = (finding.code, finding.text)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique
