"""Why the replay shows less than Elasticsearch holds: the doctor's diagnosis of one session's records.

Given the records of a session found by a wider search than OpenReplay's (token or session id, in the
message or in the fields), say why a generation misses each (no ``tags: error``, outside the poll window,
a token with ``-`` that ≤ 1.20's regex cuts short, no prefix, another index); and check what the
credentials may read and how the index is mapped.

Only reads: it never writes, deletes or changes anything, and never prints a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from otel_openreplay.connection import describe_api_error
from otel_openreplay.generations import (
    CURRENT_INDEX,
    LEGACY,
    Finding,
    Generation,
    Target,
    bad_time_finding,
    legacy_token,
    parse_rfc3339,
    token_dash_finding,
    unique_findings,
)
from otel_openreplay.template import FIELD_TYPES, field_types_from_field_caps, mapping_problems

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

DIAGNOSTIC_SIZE = 200
"""Records of the session the wider search looks at when explaining what a generation misses."""


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
        return token_dash_finding(target.token, token)
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
        return bad_time_finding(source.get("utc_time"))
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


def missing_index_finding(index: str) -> Finding:
    """A search answered 404: the index is not there."""
    return Finding(
        "index-missing",
        f"the index `{index}` does not exist",
        f"run `otel-openreplay es setup --index {index}`",
    )


def refused_finding(index: str, error: Any) -> Finding:
    """A search answered 403: the key may not read the index."""
    return Finding(
        "privilege",
        f"the search on `{index}` was refused: {describe_api_error(error)}",
        f"give OpenReplay's key `read` on `{index}` (`otel-openreplay es api-key --for openreplay`)",
    )


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


def privilege_findings(client: Elasticsearch, indexes: Sequence[str]) -> list[Finding]:
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


def mapping_findings(client: Elasticsearch, index: str) -> list[Finding]:
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


def diagnose(
    client: Elasticsearch,
    index: str,
    generations: Sequence[Generation],
    target: Target,
    since_ms: int,
    now_ms: int,
) -> list[Finding]:
    """Find the session's records however they were written, and say why a generation misses them.

    Adds each generation's own findings to it; returns the findings about the check as a whole.
    """
    from elasticsearch import ApiError

    indexes = sorted({index, CURRENT_INDEX})
    try:
        answer = client.search(
            index=",".join(indexes),
            query=diagnostic_query(target),
            size=DIAGNOSTIC_SIZE,
            ignore_unavailable=True,
        ).body
    except ApiError:
        return []
    hits = answer.get("hits", {}).get("hits", [])
    for generation in generations:
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
        generation.findings = unique_findings(generation.findings)
    if hits or any(g.shown for g in generations):
        return []
    return [
        Finding(
            "no-records",
            f"no record of {target.describe()} is in {', '.join(indexes)} at all",
            "was an error logged during that session? is the service exporting (OTEL_LOGS_EXPORTER, "
            "the collector's logs pipeline)? is the token header reaching the service? (OpenReplay ≥ 1.21's "
            'panel says "Failed to fetch logs from Elasticsearch" for such a session)',
        )
    ]
