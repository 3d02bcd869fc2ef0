"""The doctor: run OpenReplay's own Elasticsearch reads for one session and say what the replay shows.

Two generations of OpenReplay read differently (docs/DESIGN.md, "Facts about OpenReplay"), and both are
run exactly as they run them: ≤ 1.20's poll (bool filter on ``message``/``utc_time``/``tags``,
``sort=utc_time:asc`` and ``scroll=2m`` as URL parameters, 1000 per page, on the configured index) and
≥ 1.21's per-session read (``match_phrase`` on ``message`` in the index ``logs``). Their answers are
then read the way OpenReplay reads them (≤ 1.20's token regex, RFC 3339 ``utc_time``; ≥ 1.21's UI
level rule), and when a record of the session exists but a generation would not show it, a wider
search finds it and the doctor says why (no ``tags: error``, outside the poll window, a token with
``-`` that ≤ 1.20's regex cuts short, no prefix, a wrong mapping, a missing privilege…).

Only reads: it never writes, deletes or changes anything, and it never prints a credential. The
analysis is pure functions over Elasticsearch answers (unit-tested); :func:`run_check` does the I/O.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from otel_openreplay.connection import DEFAULT_INDEX, describe_api_error
from otel_openreplay.session import session_id_from_token, valid_session_id, valid_token
from otel_openreplay.template import (
    FIELD_TYPES,
    field_types_from_field_caps,
    mapping_problems,
)

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
"""Pages of ≤ 1.20's scroll the doctor reads at most (20 000 records)."""

DIAGNOSTIC_SIZE = 200
"""Records of the session the wider search looks at when explaining what a generation misses."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_UI_LEVELS = ("error", "warning", "info", "debug")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ExitCode(IntEnum):
    """The doctor's exit codes (also the CLI's)."""

    FOUND = 0
    NOTHING = 1
    USAGE = 2
    CONNECT = 3
    AUTH = 4
    INDEX = 5
    UNSUPPORTED = 6  # the server's version or settings refuse it (API keys off on 7.x, too old for a parameter)


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
        return bool(self.shown) and not any(f.problem and f.code == "no-level" for f in self.findings)


@dataclass
class CheckReport:
    """The whole answer of ``es check``."""

    target: Target
    index: str
    credentials: str
    generations: list[Generation] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.NOTHING

    def as_json(self) -> dict[str, Any]:
        """One JSON-able object: target, exit code, general findings, and per generation its findings."""
        return {
            "target": asdict(self.target),
            "index": self.index,
            "credentials": self.credentials,
            "exit_code": int(self.exit_code),
            "findings": [asdict(f) for f in self.findings],
            "generations": [
                {
                    "name": g.name,
                    "title": g.title,
                    "index": g.index,
                    "request": g.request,
                    "ok": g.ok,
                    "shown": [asdict(e) for e in g.shown],
                    "findings": [asdict(f) for f in g.findings],
                }
                for g in self.generations
            ],
        }


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


def diagnostic_query(target: Target) -> dict[str, Any]:
    """A wider search for any record of the target, however it was written (not what OpenReplay runs)."""
    should: list[dict[str, Any]] = []
    if target.token:
        should += [
            {"match_phrase": {"message": target.token}},
            {"term": {"openReplaySessionToken": target.token}},
        ]
    if target.session_id:
        should += [
            {"match_phrase": {"message": f"openReplaySession.id={target.session_id}"}},
            {"term": {"openReplaySession.id": target.session_id}},
        ]
    return {"bool": {"should": should, "minimum_should_match": 1}}


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
    """The level OpenReplay ≥ 1.21's panel shows: the first of error/warning/info/debug that ``level``
    contains, ``info`` otherwise (so ``ERROR`` shows as info); ``None`` when there is no string level
    (the panel breaks)."""
    if not isinstance(level, str):
        return None
    for name in _UI_LEVELS:
        if name in level:
            return name
    return "info"


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``15m``, ``1h``, ``2d``, ``1w`` (or ``1h30m``); ``ValueError`` otherwise."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 1h, 2d")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


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
                findings.append(_dash_finding(target.token, token))
            continue
        moment = parse_rfc3339(source.get("utc_time"))
        if moment is None:
            findings.append(_bad_time_finding(source.get("utc_time")))
            continue
        shown.append(Entry(str(source.get("utc_time")), "error", message))
    return shown, _unique(findings)


def current_view(hits: Iterable[Mapping[str, Any]]) -> tuple[list[Entry], list[Finding]]:
    """What ≥ 1.21's panel shows of its hits, and the problems of the ones it shows badly."""
    shown: list[Entry] = []
    findings: list[Finding] = []
    for hit in hits:
        source = hit.get("_source", {})
        message = source.get("message")
        if not isinstance(message, str):
            continue
        level = source.get("level")
        shown_level = ui_level(level)
        if shown_level is None:
            findings.append(
                Finding(
                    "no-level",
                    "records have no `level`: OpenReplay ≥ 1.21's log panel breaks on them",
                    "write `level` (error/warning/info/debug) on every document, as the exporter and "
                    "the collector config do",
                )
            )
            shown_level = "?"
        elif shown_level == "info" and isinstance(level, str) and level.lower() in _UI_LEVELS and level != "info":
            findings.append(
                Finding(
                    "uppercase-level",
                    f"`level` is {level!r}: OpenReplay ≥ 1.21 shows it as info (it looks for lowercase)",
                    "write the level in lowercase (`error`)",
                    problem=False,
                )
            )
        shown.append(Entry(str(source.get("@timestamp", "")), shown_level, message))
    return shown, _unique(findings)


def explain_legacy_miss(source: Mapping[str, Any], target: Target, since_ms: int, now_ms: int) -> Finding | None:
    """Why ≤ 1.20's poll does not show a record of the target, or ``None`` if it should."""
    message = source.get("message")
    if not isinstance(message, str):
        return Finding("message-not-string", "a record's `message` is not a string: OpenReplay skips it")
    if "openreplaysessiontoken=" not in message.lower():
        return Finding(
            "no-token-prefix",
            "records of this session have no `openReplaySessionToken=` in `message`: ≤ 1.20 cannot find them",
            "the token was not known when they were logged (only a session id?), or the prefix is off "
            "(OTEL_OPENREPLAY_PREFIX)",
        )
    token = legacy_token(message)
    if target.token and token != target.token and target.token in message:
        return _dash_finding(target.token, token)
    tags = source.get("tags")
    tag_list = tags if isinstance(tags, list) else [tags]
    if "error" not in tag_list:
        return Finding(
            "no-error-tag",
            f"records of this session are tagged {tags!r}, not `error`: ≤ 1.20 polls only `tags: error`",
            "only error-level records are polled; raise their level or check OPENREPLAY_MIN_SEVERITY_NUMBER",
        )
    moment = parse_rfc3339(source.get("utc_time"))
    if moment is None:
        return _bad_time_finding(source.get("utc_time"))
    at_ms = int(moment.timestamp() * 1000)
    if at_ms < since_ms:
        return Finding(
            "outside-window",
            f"records of this session are older than the window ({source.get('utc_time')}): ≤ 1.20's first "
            "poll looks back 24 h, and later polls only after the newest record seen",
            "a record that arrives late (held in a queue) behind newer ones is never polled; widen --since "
            "to see it here",
            problem=False,
        )
    if at_ms > now_ms:
        return Finding("future-time", f"`utc_time` {source.get('utc_time')} is in the future: not polled yet")
    return None


def explain_current_miss(source: Mapping[str, Any], target: Target, index: str) -> Finding | None:
    """Why ≥ 1.21's read does not show a record of the target, or ``None`` if it should."""
    if index != CURRENT_INDEX:
        return Finding(
            "other-index",
            f"records are in `{index}`: OpenReplay ≥ 1.21 reads only the index `{CURRENT_INDEX}`",
            f"write to `{CURRENT_INDEX}` (OPENREPLAY_ES_INDEX={CURRENT_INDEX})",
        )
    message = source.get("message")
    if not isinstance(message, str):
        return Finding("message-not-string", "a record's `message` is not a string: OpenReplay skips it")
    if target.session_id is None:
        return Finding("no-session-id", "the token has no session id OpenReplay ≥ 1.21 could search for")
    if f"openReplaySession.id={target.session_id}" not in message:
        return Finding(
            "no-id-prefix",
            f"records of this session have no `openReplaySession.id={target.session_id}` in `message`: "
            "≥ 1.21 cannot find them",
            "check OTEL_OPENREPLAY_PREFIX (it must include `id`)",
        )
    return None


def exit_code_for(report: CheckReport) -> ExitCode:
    """0 if any generation shows records; else 4 for a privilege, 5 for index/mapping, 1 for nothing."""
    codes = {f.code for f in report.findings} | {f.code for g in report.generations for f in g.findings}
    if "connect" in codes:
        return ExitCode.CONNECT
    if "auth" in codes:
        return ExitCode.AUTH
    if any(g.ok for g in report.generations):
        return ExitCode.FOUND
    if "privilege" in codes:
        return ExitCode.AUTH
    if codes & {"index-missing", "mapping"}:
        return ExitCode.INDEX
    return ExitCode.NOTHING


def render_text(report: CheckReport) -> str:
    """The report for a terminal: per generation, each record shown (time, level, first line) or why none."""
    lines = [f"Checking {report.target.describe()} as {report.credentials}."]
    for finding in report.findings:
        lines += _finding_lines(finding, "")
    for generation in report.generations:
        count = len(generation.shown)
        verdict = f"shows {count} record{'s' if count != 1 else ''}" if count else "shows nothing"
        lines.append("")
        lines.append(f"{generation.title}, index {generation.index}: the replay {verdict}")
        for entry in generation.shown:
            first, *rest = entry.message.splitlines() or [""]
            more = f"  (+{len(rest)} lines)" if rest else ""
            lines.append(f"  {entry.time}  {entry.level:<7}  {first}{more}")
        for finding in generation.findings:
            lines += _finding_lines(finding, "  ")
    return "\n".join(lines)


# --- The I/O --------------------------------------------------------------------------------------


def run_check(
    client: Elasticsearch,
    target: Target,
    *,
    index: str = DEFAULT_INDEX,
    since_seconds: int = LEGACY_FIRST_POLL_SECONDS,
    now: datetime | None = None,
    credentials: str = "the configured credentials",
) -> CheckReport:
    """Run both generations' reads for ``target`` and explain the result. Never writes anything.

    Connection and login failures end the check early (exit codes 3 and 4); every other error becomes
    a finding of the generation it concerns.
    """
    from elasticsearch import ApiError, AuthenticationException  # here: keep this module light
    from elasticsearch import ConnectionError as ESConnectionError

    moment = now or datetime.now(timezone.utc)
    now_ms = int(moment.timestamp() * 1000)
    since_ms = now_ms - since_seconds * 1000
    report = CheckReport(target, index, credentials)
    try:
        who = client.security.authenticate().body
        report.credentials = _who(who) or credentials
    except ESConnectionError as error:
        report.findings.append(
            Finding("connect", f"cannot connect to Elasticsearch: {error}", "check OPENREPLAY_ES_URL / --url")
        )
        report.exit_code = exit_code_for(report)
        return report
    except AuthenticationException as error:
        report.findings.append(
            Finding("auth", f"Elasticsearch refused the credentials: {describe_api_error(error)}", _AUTH_TIP)
        )
        report.exit_code = exit_code_for(report)
        return report
    except ApiError:
        pass  # security off, or _authenticate unavailable: carry on, the searches will tell

    indexes = [index] if index == CURRENT_INDEX else [index, CURRENT_INDEX]
    report.findings += _privilege_findings(client, indexes)
    mapping_by_index = {name: _mapping_findings(client, name) for name in indexes}

    legacy = Generation(LEGACY, "OpenReplay ≤ 1.20 (token poller)", index, legacy_request(index, since_ms))
    legacy.findings += mapping_by_index[index]
    legacy.findings += _run_legacy(client, legacy, target)
    legacy.findings.append(
        Finding(
            "legacy-scope",
            f"≤ 1.20 shows only records from the last {_human(since_seconds)} on its first poll, and needs a "
            "token whose HMAC matches the deployment's secret (the doctor cannot check that)",
            problem=False,
        )
    )
    report.generations.append(legacy)

    current = Generation(
        CURRENT,
        "OpenReplay ≥ 1.21 (session id)",
        CURRENT_INDEX,
        current_request(target.session_id or "<none>"),
    )
    current.findings += mapping_by_index[CURRENT_INDEX]
    if target.session_id is None:
        current.findings.append(
            Finding(
                "no-session-id",
                "this token has no session id (first segment is not base36): ≥ 1.21 "
                "searches by session id and cannot find these records",
            )
        )
    else:
        current.findings += _run_current(client, current)
    report.generations.append(current)

    _diagnose(client, report, target, since_ms, now_ms)
    report.exit_code = exit_code_for(report)
    return report


_AUTH_TIP = "check OPENREPLAY_ES_API_KEY (the encoded form) or OPENREPLAY_ES_USER/OPENREPLAY_ES_PASSWORD"


def _privilege_findings(client: Elasticsearch, indexes: Sequence[str]) -> list[Finding]:
    from elasticsearch import ApiError

    try:
        answer = client.security.has_privileges(
            cluster=["monitor"], index=[{"names": list(indexes), "privileges": ["read"]}]
        ).body
    except ApiError:
        return []
    findings: list[Finding] = []
    for name, privileges in answer.get("index", {}).items():
        if not privileges.get("read"):
            findings.append(
                Finding(
                    "privilege",
                    f"these credentials lack `read` on `{name}`: OpenReplay's searches with them find nothing",
                    "create OpenReplay's key with "
                    f"`otel-openreplay es api-key --for openreplay --index {name}`, "
                    "and run this check with the same key",
                )
            )
    if not answer.get("cluster", {}).get("monitor", True):
        findings.append(
            Finding(
                "no-monitor",
                "these credentials lack cluster `monitor`: OpenReplay ≤ 1.20's connection test "
                "(HEAD /) fails, "
                "its searches work",
                "for ≤ 1.20 create the key with `--legacy`",
                problem=False,
            )
        )
    return findings


def _mapping_findings(client: Elasticsearch, index: str) -> list[Finding]:
    from elasticsearch import ApiError, NotFoundError

    try:
        caps = client.field_caps(index=index, fields=list(FIELD_TYPES)).body
    except NotFoundError:
        return [
            Finding(
                "index-missing",
                f"the index `{index}` does not exist",
                f"run `otel-openreplay es setup --index {index}` (and send a record)",
            )
        ]
    except ApiError:
        return []  # a missing privilege is reported once, by the privilege check
    findings = []
    for problem in mapping_problems(field_types_from_field_caps(caps)):
        if problem.serious:
            findings.append(
                Finding(
                    "mapping",
                    problem.text,
                    f"create the index anew with `otel-openreplay es setup --index {index}` (reindex the "
                    "old data into it): a field's type cannot change in place",
                )
            )
    return findings


def _run_legacy(client: Elasticsearch, generation: Generation, target: Target) -> list[Finding]:
    from elasticsearch import ApiError, AuthorizationException, NotFoundError

    request = generation.request
    hits: list[Mapping[str, Any]] = []
    scroll_id: str | None = None
    try:
        answer = client.search(
            index=generation.index,
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
    except NotFoundError:
        return [] if _has(generation, "index-missing") else [_missing_index(generation.index)]
    except AuthorizationException as error:
        return [_refused(generation.index, error)]
    except ApiError as error:
        return [Finding("search-error", f"the search failed: {describe_api_error(error)}")]
    finally:
        if scroll_id is not None:
            _clear_scroll(client, scroll_id)
    generation.shown, findings = legacy_view(hits, target)
    return findings


def _run_current(client: Elasticsearch, generation: Generation) -> list[Finding]:
    from elasticsearch import ApiError, AuthorizationException, NotFoundError

    body = generation.request["body"]
    try:
        answer = client.search(index=CURRENT_INDEX, size=body["size"], query=body["query"], track_total_hits=True).body
    except NotFoundError:
        return [] if _has(generation, "index-missing") else [_missing_index(CURRENT_INDEX)]
    except AuthorizationException as error:
        return [_refused(CURRENT_INDEX, error)]
    except ApiError as error:
        return [Finding("search-error", f"the search failed: {describe_api_error(error)}")]
    generation.shown, findings = current_view(answer.get("hits", {}).get("hits", []))
    return findings


def _diagnose(client: Elasticsearch, report: CheckReport, target: Target, since_ms: int, now_ms: int) -> None:
    """Find the session's records however they were written, and say why a generation misses them."""
    from elasticsearch import ApiError

    indexes = sorted({report.index, CURRENT_INDEX})
    try:
        answer = client.search(
            index=",".join(indexes),
            query=diagnostic_query(target),
            size=DIAGNOSTIC_SIZE,
            ignore_unavailable=True,
        ).body
    except ApiError:
        return
    hits = answer.get("hits", {}).get("hits", [])
    for generation in report.generations:
        shown_messages = {entry.message for entry in generation.shown}
        for hit in hits:
            source = hit.get("_source", {})
            if source.get("message") in shown_messages and hit.get("_index") == generation.index:
                continue
            if generation.name == LEGACY:
                if hit.get("_index") != generation.index and "*" not in generation.index:
                    continue
                finding = explain_legacy_miss(source, target, since_ms, now_ms)
            else:
                finding = explain_current_miss(source, target, str(hit.get("_index")))
            if finding is not None:
                generation.findings.append(finding)
        generation.findings = _unique(generation.findings)
    if not hits and not any(g.shown for g in report.generations):
        report.findings.append(
            Finding(
                "no-records",
                f"no record of {target.describe()} is in {', '.join(indexes)} at all",
                "was an error logged during that session? is the service exporting (OTEL_LOGS_EXPORTER, "
                "the collector's logs pipeline)? is the token header reaching the service?",
            )
        )


def _clear_scroll(client: Elasticsearch, scroll_id: str) -> None:
    from elasticsearch import ApiError

    with contextlib.suppress(ApiError):  # OpenReplay never clears its scrolls; they expire after 2 minutes
        client.clear_scroll(scroll_id=scroll_id)


def _missing_index(index: str) -> Finding:
    return Finding(
        "index-missing",
        f"the index `{index}` does not exist",
        f"run `otel-openreplay es setup --index {index}`",
    )


def _refused(index: str, error: Any) -> Finding:
    return Finding(
        "privilege",
        f"the search on `{index}` was refused: {describe_api_error(error)}",
        f"give OpenReplay's key `read` on `{index}` (`otel-openreplay es api-key --for openreplay`)",
    )


def _dash_finding(token: str, cut: str | None) -> Finding:
    return Finding(
        "token-dash",
        f"the token contains `-`: OpenReplay ≤ 1.20's regex reads only {cut!r} of {token!r}, so the token "
        "does not match and the record is dropped",
        "nothing to change on this side: ≤ 1.20 cannot read tokens with a negative delay; "
        "≥ 1.21 (session id) "
        "finds these records",
    )


def _bad_time_finding(value: Any) -> Finding:
    return Finding(
        "bad-utc-time",
        f"`utc_time` {value!r} is not RFC 3339: OpenReplay ≤ 1.20 skips the record",
        "write UTC times such as 2026-11-26T14:07:34.120Z",
    )


def _has(generation: Generation, code: str) -> bool:
    return any(f.code == code for f in generation.findings)


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        key = (finding.code, finding.text)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique


def _who(answer: Mapping[str, Any]) -> str | None:
    key = answer.get("api_key")
    if isinstance(key, Mapping):
        return f"API key {key.get('name') or key.get('id')} (id {key.get('id')})"
    user = answer.get("username")
    return f"user {user}" if user else None


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds // size > (1 if unit == "d" else 0):
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _finding_lines(finding: Finding, indent: str) -> list[str]:
    label = "PROBLEM" if finding.problem else "note"
    lines = [f"{indent}{label}: {finding.text}"]
    if finding.tip:
        lines.append(f"{indent}  TIP: {finding.tip}")
    return lines
