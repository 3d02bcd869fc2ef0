"""Least-privilege API keys: one for OpenReplay to read, one for the exporters to write, one for retention.

The privileges were established against a real Elasticsearch 8.19 (``tests/test_keys.py`` keeps them
honest): OpenReplay's reads, both generations (the ≤ 1.20 scroll poll and the ≥ 1.21 ``match_phrase``),
need ``read`` on the index and nothing at cluster level; ≤ 1.20's settings page tests the connection
with ``HEAD /``, which needs cluster ``monitor`` (``legacy=True``). Writing documents needs
``create_doc`` (create only: no overwrite, no delete, no read) and ``auto_configure`` (create the
index from the template if it is missing, and map new fields: 8.19 still lets ``create_doc`` map new
fields but warns that the next major will not). Both work unchanged when ``logs`` is the retention's
write alias (:mod:`otel_openreplay.retention`): privileges are checked against the alias name.
The maintenance key (``es rotate`` on a schedule) gets ``manage`` on the alias, the only privilege
that grants ``_rollover``, and on the numbered indices ``<index>-0*`` only what deciding and deleting
need: ``read`` (the newest document's age), ``view_index_metadata``, ``monitor``, ``delete_index``.
It can neither write nor delete a document.

It must never grant ``cluster: all`` (what OpenReplay's own doc suggests) or any write privilege to
the reading key. A key's privileges are also capped by those of the user who creates it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from otel_openreplay.connection import DEFAULT_INDEX
from otel_openreplay.template import backing_pattern

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

Purpose = Literal["openreplay", "writer", "maintenance"]
"""Who the key is for: OpenReplay's integration (reads), the collector/exporter (writes), or ``es rotate``."""

READER_INDEX_PRIVILEGES: tuple[str, ...] = ("read",)
"""Index privileges of OpenReplay's key: both generations' searches (and ≤ 1.20's scrolls)."""

LEGACY_CLUSTER_PRIVILEGES: tuple[str, ...] = ("monitor",)
"""Cluster privileges added for OpenReplay ≤ 1.20, whose settings page pings ``HEAD /``."""

WRITER_INDEX_PRIVILEGES: tuple[str, ...] = ("create_doc", "auto_configure")
"""Index privileges of the writers' key: create documents, create the index and map new fields."""


MAINTENANCE_ALIAS_PRIVILEGES: tuple[str, ...] = ("manage",)
"""On the alias: ``_rollover`` is granted by ``manage`` (or ``all``) and nothing smaller."""

MAINTENANCE_INDICES_PRIVILEGES: tuple[str, ...] = ("read", "view_index_metadata", "monitor", "delete_index")
"""On the numbered indices: read their newest document's age, their metadata and size; delete them whole."""


@dataclass(frozen=True)
class CreatedKey:
    """A new API key. ``api_key`` is the secret: shown once, never stored by this package."""

    name: str
    id: str
    api_key: str
    encoded: str
    role_descriptors: dict[str, Any]

    def as_json(self) -> dict[str, str]:
        """Exactly ``{"id", "api_key", "encoded"}``, for scripts."""
        return {"id": self.id, "api_key": self.api_key, "encoded": self.encoded}


def default_name(purpose: Purpose, index: str) -> str:
    """The key's default name: ``openreplay-read-<index>``, ``otel-openreplay-write-<index>`` or
    ``otel-openreplay-maintenance-<index>``."""
    if purpose == "openreplay":
        return f"openreplay-read-{index}"
    return f"otel-openreplay-{'write' if purpose == 'writer' else 'maintenance'}-{index}"


def role_descriptors(purpose: Purpose, index: str = DEFAULT_INDEX, *, legacy: bool = False) -> dict[str, Any]:
    """The key's only role: ``read`` on ``index`` (+ ``monitor`` if ``legacy``), the writers' create,
    or the maintenance key's rollover and delete.

    ``legacy`` applies to the OpenReplay key only.
    """
    if purpose == "maintenance":
        if legacy:
            raise ValueError("--legacy is for the OpenReplay key only")
        return {
            "otel_openreplay_maintenance": {
                "cluster": [],
                "indices": [
                    {"names": [index], "privileges": list(MAINTENANCE_ALIAS_PRIVILEGES)},
                    {"names": [backing_pattern(index)], "privileges": list(MAINTENANCE_INDICES_PRIVILEGES)},
                ],
            }
        }
    if purpose == "openreplay":
        cluster = list(LEGACY_CLUSTER_PRIVILEGES) if legacy else []
        privileges = list(READER_INDEX_PRIVILEGES)
        role = "openreplay_read"
    elif purpose == "writer":
        if legacy:
            raise ValueError("--legacy is for the OpenReplay key only")
        cluster = []
        privileges = list(WRITER_INDEX_PRIVILEGES)
        role = "otel_openreplay_write"
    else:
        raise ValueError(f"unknown key purpose {purpose!r}: openreplay, writer or maintenance")
    return {role: {"cluster": cluster, "indices": [{"names": [index], "privileges": privileges}]}}


def create_key(
    client: Elasticsearch,
    purpose: Purpose,
    index: str = DEFAULT_INDEX,
    *,
    legacy: bool = False,
    name: str | None = None,
    expiration: str | None = None,
) -> CreatedKey:
    """Create the least-privilege key for ``purpose`` (needs ``manage_own_api_key`` or more).

    ``expiration`` is Elasticsearch's duration syntax (``90d``, ``12h``); none means it never expires.
    """
    descriptors = role_descriptors(purpose, index, legacy=legacy)
    key_name = name or default_name(purpose, index)
    kwargs: dict[str, Any] = {"name": key_name, "role_descriptors": descriptors}
    if expiration:
        kwargs["expiration"] = expiration
    created = client.security.create_api_key(**kwargs).body
    pair = f"{created['id']}:{created['api_key']}"
    encoded = created.get("encoded") or base64.b64encode(pair.encode()).decode()
    return CreatedKey(key_name, created["id"], created["api_key"], encoded, descriptors)


def usage_text(key: CreatedKey, purpose: Purpose, url: str, index: str) -> str:
    """Where each part of the key goes, for a person reading the terminal."""
    lines = [
        f"Created API key {key.name!r} ({', '.join(_privileges_summary(key.role_descriptors))}).",
        "The secret is shown only now; store it where you keep secrets.",
        "",
        f"  id:       {key.id}",
        f"  api_key:  {key.api_key}",
        f"  encoded:  {key.encoded}",
        "",
    ]
    if purpose == "openreplay":
        lines += [
            "In OpenReplay's Elasticsearch integration form:",
            f"  URL: {url}",
            f"  API key id (api_key_id): {key.id}",
            f"  API key (api_key):       {key.api_key}",
            f"  Indexes:                 {index}",
            "  (the form takes the id and api_key, NOT the encoded form; OpenReplay >= 1.21 reads only the",
            "  index `logs`, whatever Indexes says)",
        ]
        if index != DEFAULT_INDEX:
            lines.append(f"  Warning: OpenReplay >= 1.21 reads `logs`, not `{index}`.")
    elif purpose == "maintenance":
        lines += [
            "For the scheduled `otel-openreplay es rotate` (environment of the cron job, timer or CronJob):",
            f"  OPENREPLAY_ES_URL={url}",
            f"  OPENREPLAY_ES_INDEX={index}",
            "  OPENREPLAY_ES_API_KEY=<the encoded value above>",
        ]
    else:
        lines += [
            "For the collector and the Python exporter (environment):",
            f"  OPENREPLAY_ES_URL={url}",
            f"  OPENREPLAY_ES_INDEX={index}",
            "  OPENREPLAY_ES_API_KEY=<the encoded value above>",
        ]
    return "\n".join(lines)


def _privileges_summary(descriptors: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    for role in descriptors.values():
        for entry in role.get("indices", []):
            parts.append(f"{'+'.join(entry['privileges'])} on {','.join(entry['names'])}")
        if role.get("cluster"):
            parts.append(f"cluster {'+'.join(role['cluster'])}")
    return parts
