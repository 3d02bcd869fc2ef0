"""The index template OpenReplay needs, and the check that tells exactly what is wrong with a mapping.

:data:`FIELD_TYPES` is the mapping of the document contract (``message`` analysed ``text``, the two
times ``date``, the fields OpenReplay filters on ``keyword``); :func:`setup_index` installs it as a
composable index template and creates the index. On an index that already exists it only ADDS the
fields that are missing (Elasticsearch cannot change a field's type in place) and reports each field
whose type breaks OpenReplay, with the reason, via :func:`mapping_problems`. Where a retention is in force
(:mod:`otel_openreplay.retention`: ``index`` is a write alias over ``<index>-000001``…), the template also
covers the numbered indices and carries the retention in the mapping's ``_meta``, which every new index
inherits; :func:`setup_index` keeps both when it runs again without being told about the retention.

It must never delete or reindex anything, and never change an existing field: a wrong type is
reported with what to do, the data stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

TEMPLATE_PREFIX = "otel-openreplay-"
"""Index templates are named ``otel-openreplay-<index>``."""

BACKING_SUFFIX = "-0*"
"""The numbered indices behind a write alias ``<index>`` are ``<index>-000001``…: this pattern covers them."""

META_KEY = "otel_openreplay"
"""The key of this package's part of a mapping's ``_meta`` (the retention in force)."""

TEMPLATE_PRIORITY = 200
"""Above Elasticsearch's built-in templates (100); two templates of equal priority may not overlap."""

FIELD_TYPES: dict[str, str] = {
    "@timestamp": "date",
    "utc_time": "date",
    "message": "text",
    "tags": "keyword",
    "level": "keyword",
    "openReplaySessionToken": "keyword",
    "openReplaySession.id": "keyword",
    "openReplaySession.url": "keyword",
    "service.name": "keyword",
    "log.logger": "keyword",
    "log.level": "keyword",
    "error.type": "keyword",
    "error.message": "text",
    "error.stack_trace": "text",
    "trace.id": "keyword",
    "span.id": "keyword",
}
"""Every field of the document contract (dotted name) and the type the template gives it."""

_DATES = frozenset({"date", "date_nanos"})
_ANALYSED = frozenset({"text", "match_only_text"})
_STRINGS = frozenset({"keyword", "constant_keyword", "wildcard", "text", "match_only_text"})


@dataclass(frozen=True)
class Requirement:
    """What OpenReplay needs of one field: the types that work, and what breaks otherwise."""

    accepted: frozenset[str]
    breaks: str
    serious: bool = True


REQUIREMENTS: dict[str, Requirement] = {
    "message": Requirement(
        _ANALYSED,
        "OpenReplay finds records with match / match_phrase on `message`, which only match inside an "
        "analysed text field: as {type} it never matches, so no replay shows anything",
    ),
    "utc_time": Requirement(
        _DATES,
        "OpenReplay ≤ 1.20 polls with a range filter in epoch milliseconds on `utc_time`: as {type} it finds nothing",
    ),
    "@timestamp": Requirement(
        _DATES,
        "as {type}, documents with an RFC 3339 `@timestamp` are refused or sorted as text",
    ),
    "tags": Requirement(
        _STRINGS,
        "OpenReplay ≤ 1.20 filters `term: {{tags: error}}`: as {type} the documents are refused",
    ),
    "level": Requirement(
        _STRINGS,
        "the replay needs `level` (`error`, `warning`…) on every record: as {type} the documents are refused",
    ),
}
"""Fields whose type decides whether OpenReplay finds and shows a record."""


@dataclass(frozen=True)
class MappingProblem:
    """One field whose mapping breaks OpenReplay, or a field that is not mapped yet."""

    field: str
    found: str | None
    expected: str
    text: str
    serious: bool = True


@dataclass
class SetupReport:
    """What :func:`setup_index` did and what it found."""

    template: str
    index: str
    created_index: bool = False
    patterns: list[str] = field(default_factory=list)
    added_fields: list[str] = field(default_factory=list)
    problems: list[MappingProblem] = field(default_factory=list)


def template_name(index: str) -> str:
    """The name of the index template for ``index``."""
    return TEMPLATE_PREFIX + index.replace("*", "_")


def properties(field_types: Mapping[str, str] = FIELD_TYPES) -> dict[str, Any]:
    """The ``properties`` of a mapping, dotted names nested as objects."""
    root: dict[str, Any] = {}
    for name, type_ in field_types.items():
        *parents, leaf = name.split(".") if not name.startswith("@") else [name]
        target = root
        for parent in parents:
            target = target.setdefault(parent, {"properties": {}})["properties"]
        target[leaf] = {"type": type_}
    return root


def backing_pattern(index: str) -> str:
    """The index pattern of the numbered indices behind the write alias ``index``."""
    return index + BACKING_SUFFIX


def index_template(index: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The composable index template body for ``index`` (``PUT _index_template/<name>``).

    ``meta`` (this package's part of the mapping ``_meta``: the retention) makes the template cover the
    numbered indices behind the alias too, and puts ``{META_KEY: meta}`` in their mapping.
    """
    mappings: dict[str, Any] = {"properties": properties()}
    patterns = [index]
    if meta:
        mappings["_meta"] = {META_KEY: dict(meta)}
        patterns.append(backing_pattern(index))
    return {
        "index_patterns": patterns,
        "priority": TEMPLATE_PRIORITY,
        "template": {"mappings": mappings},
        "_meta": {"managed_by": "otel-openreplay", "description": "OpenReplay backend logs layout"},
    }


def meta_from_mapping(response: Mapping[str, Any]) -> dict[str, Any] | None:
    """This package's ``_meta`` in a ``GET <index>/_mapping`` answer (the newest index's, by name), or None."""
    for name in sorted(response, reverse=True):
        body = response[name]
        mappings = body.get("mappings", {}) if isinstance(body, Mapping) else {}
        meta = (mappings.get("_meta") or {}).get(META_KEY)
        if isinstance(meta, Mapping):
            return dict(meta)
    return None


def install_template(client: Elasticsearch, index: str, meta: Mapping[str, Any] | None = None) -> str:
    """Install (or replace) the index template of ``index``; returns its name."""
    name = template_name(index)
    body = index_template(index, meta)
    client.indices.put_index_template(
        name=name,
        index_patterns=body["index_patterns"],
        priority=body["priority"],
        template=body["template"],
        meta=body["_meta"],
    )
    return name


def field_types_from_mapping(response: Mapping[str, Any]) -> dict[str, set[str]]:
    """Field → the set of its types over every index of a ``GET <index>/_mapping`` answer."""
    types: dict[str, set[str]] = {}
    for body in response.values():
        mappings = body.get("mappings", {}) if isinstance(body, Mapping) else {}
        _walk(mappings.get("properties", {}), "", types)
    return types


def field_types_from_field_caps(response: Mapping[str, Any]) -> dict[str, set[str]]:
    """Field → the set of its types from a ``_field_caps`` answer (needs only ``read``)."""
    types: dict[str, set[str]] = {}
    for name, caps in response.get("fields", {}).items():
        kinds = {kind for kind in caps if not kind.startswith("_") and kind != "unmapped"}
        if kinds:
            types[name] = kinds
    return types


def mapping_problems(field_types: Mapping[str, set[str]]) -> list[MappingProblem]:
    """Each field of the contract whose type breaks OpenReplay (serious) or that is not mapped yet.

    A field not mapped yet is not serious: the first document maps it dynamically (a string becomes
    ``text`` with a ``keyword`` sub-field, an RFC 3339 string a ``date``), or ``es setup`` adds it.
    """
    problems: list[MappingProblem] = []
    for name, expected in FIELD_TYPES.items():
        found = field_types.get(name)
        requirement = REQUIREMENTS.get(name)
        if not found:
            if requirement is not None:
                problems.append(
                    MappingProblem(
                        name,
                        None,
                        expected,
                        f"`{name}` is not mapped yet (the first document maps it dynamically; "
                        "`otel-openreplay es setup` maps it exactly)",
                        serious=False,
                    )
                )
            continue
        accepted = requirement.accepted if requirement is not None else _STRINGS | _DATES
        wrong = sorted(found - accepted)
        if wrong:
            shown = "/".join(wrong)
            text = f"`{name}` is mapped as {shown}, expected {expected}: " + (
                requirement.breaks.format(type=shown) if requirement else "documents may be refused"
            )
            problems.append(MappingProblem(name, shown, expected, text, serious=requirement is not None))
    return problems


def setup_index(client: Elasticsearch, index: str, *, meta: Mapping[str, Any] | None = None) -> SetupReport:
    """Install the index template and create ``index``; on an existing index add missing fields.

    Idempotent: running it again changes nothing. ``meta`` is the retention to keep in the template;
    without it, the retention already in the index's mapping (if any) is kept. Returns what was done
    and every remaining problem. Raises the client's errors (connection, auth, a conflicting
    template) for the caller to explain.
    """
    from elasticsearch import BadRequestError, NotFoundError  # here: importable without the client

    if meta is None and "*" not in index:
        try:
            meta = meta_from_mapping(client.indices.get_mapping(index=index).body)
        except NotFoundError:
            meta = None
    name = install_template(client, index, meta)
    report = SetupReport(template=name, index=index, patterns=index_template(index, meta)["index_patterns"])
    if "*" not in index and not client.indices.exists(index=index):
        try:
            client.indices.create(index=index)
            report.created_index = True
        except BadRequestError as error:
            if "resource_already_exists_exception" not in str(error):
                raise
    if "*" in index:
        return report
    types = field_types_from_mapping(client.indices.get_mapping(index=index).body)
    missing = {
        name_: type_ for name_, type_ in FIELD_TYPES.items() if name_ not in types and not _blocked(name_, types)
    }
    if missing:
        client.indices.put_mapping(index=index, properties=properties(missing))
        report.added_fields = sorted(missing)
        types = field_types_from_mapping(client.indices.get_mapping(index=index).body)
    report.problems = mapping_problems(types)
    return report


def _blocked(name: str, types: Mapping[str, set[str]]) -> bool:
    """Whether a parent of ``name`` is mapped as a non-object (then ``name`` cannot be added)."""
    parts = name.split(".") if not name.startswith("@") else [name]
    return any(".".join(parts[: i + 1]) in types for i in range(len(parts) - 1))


def _walk(props: Mapping[str, Any], prefix: str, out: dict[str, set[str]]) -> None:
    for name, spec in props.items():
        if not isinstance(spec, Mapping):
            continue
        path = prefix + name
        if "properties" in spec and spec.get("type") in (None, "object"):
            _walk(spec["properties"], path + ".", out)
        else:
            out.setdefault(path, set()).add(str(spec.get("type", "object")))
