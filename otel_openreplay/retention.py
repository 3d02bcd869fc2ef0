"""Retention for the ``logs`` index: a write alias over numbered indices, rolled over and deleted whole.

With a retention in force, ``logs`` is a write alias over ``logs-000001``, ``logs-000002``…; the index
template (:mod:`otel_openreplay.template`) maps the numbered indices and carries the retention in their
mapping ``_meta``. Both writers keep writing to ``logs`` and both OpenReplay generations keep reading
``logs`` (and ≤ 1.20's ``*log*``): Elasticsearch resolves the alias, counts every document once, and
checks the keys' privileges against the alias name, so no key changes.

- :func:`enable` sets a retention: on a missing index it creates the layout; on a plain index it
  MIGRATES it (write block → ``_clone`` to ``<index>-000001`` → create ``<index>-000002`` → one atomic
  ``POST _aliases`` that removes the plain index and adds the alias), so there is no moment where
  ``logs`` does not exist and a writer could auto-create a plain index; writers see a write block
  (403) for the second or so of the clone and retry; on the alias layout it only changes the retention.
- :func:`rotate` is what a schedule runs: it rolls the write index over once it is older than the
  rollover period (and holds a document), and deletes whole indices whose newest document is older than
  the retention, judged by the server's clock. :func:`plan` is the decision, a pure function.
- :func:`retention_state` is what ``es check`` reports: layout, retention, count, size, oldest and
  newest document (each part only as far as the credentials may see).

Only core APIs (alias, ``_rollover``, ``_clone``, index blocks, ``_stats``): they are on every server the
project supports, Elastic's test distributions included, which have no ILM, no data streams and no
``_delete_by_query``/``_reindex``. It must never delete a document younger than the retention, never
delete the write index or an index that is not one of the alias's numbered indices, never delete
documents one by one, and never leave the writers without an index to write to.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from otel_openreplay.template import META_KEY, backing_pattern, install_template, meta_from_mapping, setup_index

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from otel_openreplay.template import SetupReport

DEFAULT_ROLLOVER = "1d"
"""How long one numbered index receives documents before :func:`rotate` rolls the alias over."""

TIME_FIELDS = ("@timestamp", "utc_time")
"""A document's times: it is younger than the retention if either is (or if it has no ``@timestamp``)."""

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

Layout = Literal["missing", "plain", "alias"]
"""``missing``: no index; ``plain``: an ordinary index (no retention); ``alias``: the retention layout."""


class RetentionError(Exception):
    """A retention command cannot go on; the message says why and ``tip`` what to do."""

    def __init__(self, message: str, tip: str = "") -> None:
        super().__init__(message)
        self.tip = tip


def parse_duration(text: str) -> int:
    """Seconds in one ``<n><unit>`` (units s, m, h, d, w), e.g. ``30d``; ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 2w (one number and one unit, above 0)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class Policy:
    """A retention and its rollover period, as typed (``30d``) and in seconds."""

    retention: str
    rollover: str = DEFAULT_ROLLOVER

    def __post_init__(self) -> None:
        if self.rollover_seconds > self.retention_seconds:
            raise ValueError(
                f"the rollover period {self.rollover} is longer than the retention {self.retention}: "
                "choose a rollover period at most as long as the retention"
            )

    @property
    def retention_seconds(self) -> int:
        return parse_duration(self.retention)

    @property
    def rollover_seconds(self) -> int:
        return parse_duration(self.rollover)

    def as_meta(self) -> dict[str, str]:
        """What the mapping ``_meta`` holds under :data:`~otel_openreplay.template.META_KEY`."""
        return {"retention": self.retention, "rollover": self.rollover}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Policy | None:
        """The policy in a mapping's ``_meta`` part, or None if there is none (or it is not readable)."""
        if not meta or not isinstance(meta.get("retention"), str):
            return None
        try:
            return cls(meta["retention"], str(meta.get("rollover") or DEFAULT_ROLLOVER))
        except ValueError:
            return None


def backing_name(index: str, number: int) -> str:
    """``<index>-00000N``: the numbering ``_rollover`` continues."""
    return f"{index}-{number:06d}"


def is_backing_index(index: str, name: str) -> bool:
    """Whether ``name`` is one of the numbered indices of the alias ``index``."""
    return re.fullmatch(re.escape(index) + r"-\d{6,}", name) is not None


# --- What the server holds ------------------------------------------------------------------------


@dataclass
class Member:
    """One numbered index behind the alias, as :func:`rotate` sees it."""

    name: str
    is_write_index: bool
    created_ms: int
    docs: int
    size_bytes: int
    young_docs: int | None = None
    """Documents NOT older than the retention (server clock; None: not counted)."""


@dataclass(frozen=True)
class Action:
    """One step :func:`rotate` takes (or would take): ``rollover``, ``delete`` or ``keep``, and why."""

    kind: Literal["rollover", "delete", "keep"]
    index: str
    reason: str


def plan(members: Iterable[Member], policy: Policy, now_ms: int) -> list[Action]:
    """What to do with the alias's indices: pure, so the rules are tested without a server.

    - The write index rolls over once it is older than the rollover period and holds a document (the
      server checks the age again: ``_rollover`` with ``max_age``).
    - Another index is deleted only if it is one of the alias's numbered indices, no document in it is
      younger than the retention (``young_docs == 0``, counted by the server), and the index after it
      was created at least one rollover period ago (writes resolved to it just before the rollover
      have long landed). Everything else is kept, with the reason.
    """
    ordered = sorted(members, key=lambda m: (m.created_ms, m.name))
    actions: list[Action] = []
    for position, member in enumerate(ordered):
        if member.is_write_index:
            age_s = (now_ms - member.created_ms) // 1000
            if member.docs == 0:
                actions.append(Action("keep", member.name, "the write index is empty"))
            elif age_s >= policy.rollover_seconds:
                actions.append(Action("rollover", member.name, f"the write index is older than {policy.rollover}"))
            else:
                actions.append(Action("keep", member.name, f"the write index is younger than {policy.rollover}"))
            continue
        successor = ordered[position + 1] if position + 1 < len(ordered) else None
        if member.young_docs is None:
            actions.append(Action("keep", member.name, "its documents' age is unknown"))
        elif member.young_docs > 0:
            actions.append(
                Action("keep", member.name, f"{member.young_docs} document(s) younger than {policy.retention}")
            )
        elif successor is None or (now_ms - successor.created_ms) // 1000 < policy.rollover_seconds:
            actions.append(Action("keep", member.name, f"rolled over less than {policy.rollover} ago"))
        else:
            actions.append(Action("delete", member.name, f"every document is older than {policy.retention}"))
    return actions


@dataclass
class RotateReport:
    """What :func:`rotate` did: the policy, the actions, and the indices left."""

    index: str
    policy: Policy
    actions: list[Action] = field(default_factory=list)
    rolled_over_to: str | None = None
    deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "retention": self.policy.retention,
            "rollover": self.policy.rollover,
            "dry_run": self.dry_run,
            "rolled_over_to": self.rolled_over_to,
            "deleted": self.deleted,
            "actions": [asdict(a) for a in self.actions],
        }


def layout(client: Elasticsearch, index: str) -> Layout:
    """Whether ``index`` is missing, a plain index or an alias (needs ``view_index_metadata``)."""
    if client.indices.exists_alias(name=index):
        return "alias"
    return "plain" if client.indices.exists(index=index) else "missing"


def read_policy(client: Elasticsearch, index: str) -> Policy | None:
    """The retention in force: this package's ``_meta`` in the newest index's mapping, or None."""
    return Policy.from_meta(meta_from_mapping(client.indices.get_mapping(index=index).body))


def members(client: Elasticsearch, index: str, policy: Policy) -> list[Member]:
    """The alias's numbered indices: write flag, creation time, documents, size, and those not expired."""
    aliases = client.indices.get_alias(name=index).body
    settings = client.indices.get_settings(index=index, name="index.creation_date").body
    stats = client.indices.stats(index=index, metric="docs,store").body.get("indices", {})
    flagged = [name for name, body in aliases.items() if body["aliases"][index].get("is_write_index")]
    write = flagged[0] if flagged else (next(iter(aliases)) if len(aliases) == 1 else None)
    if write is None:
        raise RetentionError(
            f"the alias `{index}` has {len(aliases)} indices and no write index",
            f"mark the newest with is_write_index (POST _aliases), or run otel-openreplay es setup --index {index}",
        )
    found = []
    for name in aliases:
        primaries = stats.get(name, {}).get("primaries", {})
        found.append(
            Member(
                name=name,
                is_write_index=name == write,
                created_ms=int(settings[name]["settings"]["index"]["creation_date"]),
                docs=int(primaries.get("docs", {}).get("count", 0)),
                size_bytes=int(primaries.get("store", {}).get("size_in_bytes", 0)),
            )
        )
    for member in found:
        if not member.is_write_index and is_backing_index(index, member.name):
            member.young_docs = count_young(client, member.name, policy.retention_seconds)
    return found


def count_young(client: Elasticsearch, name: str, retention_seconds: int) -> int:
    """Documents of ``name`` not older than the retention by the server's clock (no ``@timestamp``: young)."""
    since = f"now-{retention_seconds}s"
    query = {
        "bool": {
            "should": [{"range": {f: {"gte": since}}} for f in TIME_FIELDS]
            + [{"bool": {"must_not": {"exists": {"field": TIME_FIELDS[0]}}}}],
            "minimum_should_match": 1,
        }
    }
    return int(client.count(index=name, query=query, ignore_unavailable=True)["count"])


def rotate(client: Elasticsearch, index: str, *, dry_run: bool = False) -> RotateReport:
    """Roll the write index over when due and delete the expired indices (:func:`plan`'s rules).

    Safe to run as often as wanted and from two places at once (the server checks the rollover's age;
    an index already deleted is skipped). Raises :class:`RetentionError` when ``index`` has no retention.
    """
    from elasticsearch import NotFoundError

    kind = layout(client, index)
    if kind != "alias":
        raise RetentionError(
            f"`{index}` has no retention ({'it does not exist' if kind == 'missing' else 'it is a plain index'})",
            f"set one first: otel-openreplay es setup --index {index} --retention 30d",
        )
    policy = read_policy(client, index)
    if policy is None:
        raise RetentionError(
            f"`{index}` is an alias but its indices' mapping holds no retention",
            f"otel-openreplay es setup --index {index} --retention 30d",
        )
    report = RotateReport(index, policy, dry_run=dry_run)
    now_ms = int(time.time() * 1000)
    actions = plan(members(client, index, policy), policy, now_ms)
    if not dry_run and any(a.kind == "rollover" for a in actions):
        answer = client.indices.rollover(alias=index, conditions={"max_age": f"{policy.rollover_seconds}s"}).body
        if answer.get("rolled_over"):
            report.rolled_over_to = answer["new_index"]
    report.actions = actions
    for action in actions:
        if action.kind != "delete" or dry_run:
            continue
        try:
            client.indices.delete(index=action.index)
        except NotFoundError:
            continue
        report.deleted.append(action.index)
    return report


# --- Setting a retention --------------------------------------------------------------------------


@dataclass
class EnableReport:
    """What :func:`enable` did: the layout it found, each step taken, and the mapping check."""

    index: str
    policy: Policy
    found: Layout
    steps: list[str] = field(default_factory=list)
    setup: SetupReport | None = None


def enable(client: Elasticsearch, index: str, policy: Policy) -> EnableReport:
    """Put ``index`` under ``policy``: create the alias layout, migrate a plain index, or update the retention.

    Idempotent. The migration of a plain index loses and duplicates nothing: documents written before
    the write block are in the clone (counted: the clone must hold exactly the source's count, or it is
    undone); writes refused by the block are retried by the writers into the new write index.
    """
    if "*" in index:
        raise RetentionError(f"`{index}` is a pattern", "name one index, e.g. --index logs")
    meta = policy.as_meta()
    found = layout(client, index)
    report = EnableReport(index, policy, found)
    install_template(client, index, meta)
    if found == "missing":
        first = backing_name(index, 1)
        client.indices.create(index=first, aliases={index: {"is_write_index": True}})
        report.steps.append(f"created {first} as the write index of the alias {index}")
    elif found == "plain":
        report.steps += migrate(client, index, meta)
    else:
        client.indices.put_mapping(index=index, meta={META_KEY: meta})
        report.steps.append(f"set the retention of every index behind {index}")
    report.setup = setup_index(client, index, meta=meta)
    return report


def migrate(client: Elasticsearch, index: str, meta: Mapping[str, Any]) -> list[str]:
    """Turn the plain index ``index`` into the alias layout; on any failure undo and unblock, then raise."""
    first, second = backing_name(index, 1), backing_name(index, 2)
    for name in (first, second):
        if client.indices.exists(index=name):
            raise RetentionError(
                f"`{name}` already exists: cannot migrate `{index}` next to it",
                f"look at `{name}` (a migration interrupted?); delete it if it is not needed, then run setup again",
            )
    steps: list[str] = []
    created: list[str] = []
    blocked_at = time.monotonic()
    client.indices.add_block(index=index, block="write")
    try:
        client.indices.flush(index=index)
        client.indices.refresh(index=index)
        source_count = int(client.count(index=index)["count"])
        client.indices.clone(
            index=index,
            target=first,
            settings={"index.blocks.write": None},
            wait_for_active_shards="1",
        )
        created.append(first)
        client.indices.refresh(index=first)
        clone_count = int(client.count(index=first)["count"])
        if clone_count != source_count:
            raise RetentionError(
                f"the clone `{first}` holds {clone_count} documents, `{index}` {source_count}: migration undone",
                "run setup again; if it repeats, report it",
            )
        client.indices.create(index=second, wait_for_active_shards="1")
        created.append(second)
        client.indices.put_mapping(index=first, meta={META_KEY: dict(meta)})
        client.indices.update_aliases(
            actions=[
                {"remove_index": {"index": index}},
                {"add": {"index": second, "alias": index, "is_write_index": True}},
                {"add": {"index": first, "alias": index, "is_write_index": False}},
            ]
        )
    except BaseException:
        _undo(client, index, created)
        raise
    blocked_ms = int((time.monotonic() - blocked_at) * 1000)
    steps += [
        f"blocked writes to {index}, cloned it ({source_count} documents) to {first}",
        f"created {second} and, in one step, replaced the index {index} by the alias {index} "
        f"(write index {second}, plus {first}); writes were blocked for {blocked_ms} ms",
    ]
    return steps


def _undo(client: Elasticsearch, index: str, created: list[str]) -> None:
    """After a failed migration: drop what it created and let writers write to the plain index again."""
    import contextlib

    for name in created:
        with contextlib.suppress(Exception):
            client.indices.delete(index=name)
    with contextlib.suppress(Exception):
        client.indices.put_settings(index=index, settings={"index.blocks.write": None})


# --- What ``es check`` reports --------------------------------------------------------------------


@dataclass
class RetentionState:
    """The retention side of an index, as far as the credentials may see (None: unknown)."""

    index: str
    layout: Layout | None = None
    retention: str | None = None
    rollover: str | None = None
    indices: int | None = None
    docs: int | None = None
    size_bytes: int | None = None
    oldest: str | None = None
    newest: str | None = None
    unknown: list[str] = field(default_factory=list)
    """What could not be read, each with the privilege it needs."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """A few lines for the terminal."""
        if self.layout == "missing":
            return f"Retention of {self.index}: the index does not exist."
        if self.layout == "plain":
            rule = "none (a plain index: it grows forever; `es setup --retention 30d` bounds it)"
        elif self.layout == "alias":
            rule = f"{self.retention}, rolled over every {self.rollover}" if self.retention else "alias, no retention"
        else:
            rule = "unknown"
        lines = [f"Retention of {self.index}: {rule}"]
        if self.docs is not None:
            lines.append(f"  documents: {self.docs}" + (f" in {self.indices} indices" if self.indices else ""))
        if self.size_bytes is not None:
            lines.append(f"  size: {self.size_bytes} bytes")
        if self.oldest or self.newest:
            lines.append(f"  oldest: {self.oldest}   newest: {self.newest}")
        for missing in self.unknown:
            lines.append(f"  note: {missing}")
        return "\n".join(lines)


def retention_state(client: Elasticsearch, index: str) -> RetentionState:
    """Layout, retention, documents, size, oldest and newest record of ``index``. Never raises an API error:
    what the credentials may not read is listed in ``unknown`` with the privilege it needs."""
    from elasticsearch import ApiError, NotFoundError

    state = RetentionState(index)
    try:
        state.layout = layout(client, index)
    except ApiError:
        state.unknown.append("the layout and the retention need `view_index_metadata` on the index")
    if state.layout == "missing":
        return state
    if state.layout is not None:
        try:
            policy = read_policy(client, index)
            if policy is not None:
                state.retention, state.rollover = policy.retention, policy.rollover
        except ApiError:
            state.unknown.append("the retention needs `view_index_metadata` on the index")
    try:
        stats = client.indices.stats(index=index, metric="docs,store").body
        state.indices = len(stats.get("indices", {}))
        state.size_bytes = int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
    except ApiError:
        state.unknown.append("the size needs `monitor` on the index")
    try:
        answer = client.search(
            index=index,
            size=0,
            track_total_hits=True,
            aggs={"oldest": {"min": {"field": TIME_FIELDS[0]}}, "newest": {"max": {"field": TIME_FIELDS[0]}}},
        ).body
        state.docs = int(answer["hits"]["total"]["value"])
        state.oldest = answer["aggregations"]["oldest"].get("value_as_string")
        state.newest = answer["aggregations"]["newest"].get("value_as_string")
    except NotFoundError:
        state.layout = "missing"
    except ApiError:
        state.unknown.append("the count and the oldest document need `read` on the index")
    return state


__all__ = [
    "DEFAULT_ROLLOVER",
    "Action",
    "EnableReport",
    "Layout",
    "Member",
    "Policy",
    "RetentionError",
    "RetentionState",
    "RotateReport",
    "backing_name",
    "backing_pattern",
    "count_young",
    "enable",
    "is_backing_index",
    "layout",
    "members",
    "migrate",
    "parse_duration",
    "plan",
    "read_policy",
    "retention_state",
    "rotate",
]
