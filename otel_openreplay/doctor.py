"""The doctor: run OpenReplay's own Elasticsearch reads for one session and say what the replay shows.

Two generations of OpenReplay read differently (docs/DESIGN.md, "Facts about OpenReplay"), and both are
run exactly as they run them: ≤ 1.20's poll (bool filter on ``message``/``utc_time``/``tags``,
``sort=utc_time:asc`` and ``scroll=2m`` as URL parameters, 1000 per page, on the configured index) and
≥ 1.21's per-session read (``match_phrase`` on ``message`` in the index ``logs``). Their answers are
then read the way OpenReplay reads them (≤ 1.20's token regex, RFC 3339 ``utc_time``; ≥ 1.21's UI
level rule), and when a record of the session exists but a generation would not show it, a wider
search finds it and the doctor says why (no ``tags: error``, outside the poll window, a token with
``-`` that ≤ 1.20's regex cuts short, no prefix, a wrong mapping, a missing privilege…).

Three modules, read in order: :mod:`otel_openreplay.generations` (OpenReplay's two query generations:
the searches as OpenReplay sends them and how each reads the answers), :mod:`otel_openreplay.diagnosis`
(why a generation misses a record), and this one, the report (:func:`run_check` runs the searches,
:func:`render_text` prints the answer). The public names of all three are importable from here.

Only reads: it never writes, deletes or changes anything, and it never prints a credential. The
analysis is pure functions over Elasticsearch answers (unit-tested); :func:`run_check` does the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from otel_openreplay.connection import DEFAULT_INDEX, describe_api_error
from otel_openreplay.diagnosis import (
    diagnose,
    diagnostic_query,
    explain_current_miss,
    explain_legacy_miss,
    mapping_findings,
    missing_index_finding,
    privilege_findings,
    refused_finding,
)
from otel_openreplay.exit_codes import ExitCode
from otel_openreplay.generations import (
    CURRENT,
    CURRENT_INDEX,
    LEGACY,
    LEGACY_FIRST_POLL_SECONDS,
    LEGACY_TOKEN_RE,
    PAGE_SIZE,
    Entry,
    Finding,
    Generation,
    Target,
    current_request,
    current_view,
    fetch_current,
    fetch_legacy,
    legacy_request,
    legacy_token,
    legacy_view,
    parse_rfc3339,
    ui_level,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

__all__ = [  # the doctor's public names, wherever they are defined
    "CURRENT",
    "CURRENT_INDEX",
    "LEGACY",
    "LEGACY_FIRST_POLL_SECONDS",
    "LEGACY_TOKEN_RE",
    "PAGE_SIZE",
    "CheckReport",
    "Entry",
    "Finding",
    "Generation",
    "Target",
    "current_request",
    "current_view",
    "diagnostic_query",
    "exit_code_for",
    "explain_current_miss",
    "explain_legacy_miss",
    "legacy_request",
    "legacy_token",
    "legacy_view",
    "parse_duration",
    "parse_rfc3339",
    "render_text",
    "run_check",
    "ui_level",
]

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``15m``, ``1h``, ``2d``, ``1w`` (or ``1h30m``); ``ValueError`` otherwise."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 1h, 2d")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


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
        records = f"{count} record{'s' if count != 1 else ''}"
        if not count:
            verdict = "shows nothing"
        elif generation.ok:
            verdict = f"shows {records}"
        else:
            verdict = f"finds {records} but shows none (see PROBLEM)"
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
    report.findings += privilege_findings(client, indexes)
    mapping_by_index = {name: mapping_findings(client, name) for name in indexes}

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

    report.findings += diagnose(client, report.index, report.generations, target, since_ms, now_ms)
    report.exit_code = exit_code_for(report)
    return report


_AUTH_TIP = "check OPENREPLAY_ES_API_KEY (the encoded form) or OPENREPLAY_ES_USER/OPENREPLAY_ES_PASSWORD"


def _run_legacy(client: Elasticsearch, generation: Generation, target: Target) -> list[Finding]:
    hits, failed = _search(generation, lambda: fetch_legacy(client, generation.index, generation.request))
    generation.shown, findings = legacy_view(hits, target)
    return failed + findings


def _run_current(client: Elasticsearch, generation: Generation) -> list[Finding]:
    hits, failed = _search(generation, lambda: fetch_current(client, generation.request))
    generation.shown, findings = current_view(hits)
    return failed + findings


def _search(generation: Generation, fetch: Callable[[], list[Mapping[str, Any]]]) -> tuple[list[Any], list[Finding]]:
    """The hits of a generation's search; or none, and the finding that says why."""
    from elasticsearch import ApiError, AuthorizationException, NotFoundError

    try:
        return fetch(), []
    except NotFoundError:
        reported = any(f.code == "index-missing" for f in generation.findings)
        return [], [] if reported else [missing_index_finding(generation.index)]
    except AuthorizationException as error:
        return [], [refused_finding(generation.index, error)]
    except ApiError as error:
        return [], [Finding("search-error", f"the search failed: {describe_api_error(error)}")]


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
