"""Which Elasticsearch write errors are a document's fault, and which are the cluster's state of the moment.

A bulk ``create`` can fail for one document (its fields do not fit the index mapping: a 400 such as
``document_parsing_exception``), or because Elasticsearch will not take ANY document right now: an
index block (the flood-stage disk watermark puts ``index.blocks.read_only_allow_delete``, answered per
item 429 ``cluster_block_exception`` by 7.17, 8.0 and 8.19 alike; an operator or a lifecycle step puts
``index.blocks.write``, per item 403; a block is known by its type whatever the status), back-pressure
(429 ``es_rejected_execution_exception``, ``circuit_breaking_exception``), shards not available (503
``unavailable_shards_exception``, any 5xx), a closed index, a missing index that may not be created, a
writer lacking a privilege (403 ``security_exception``), or an alias with no write index. Only the
first kind is a rejection: sending the same document again can never work, and the fix is the mapping.
Every other kind is a :class:`Hold`: the document is fine and will be written once the cause is gone,
so the exporter keeps it like an outage.

The shapes classified here were recorded from a real Elasticsearch 8.19.21 (``tests/fixtures/
bulk_item_errors.json``, kept honest by ``tests/test_exporter.py`` against a live node).

What it must never do: raise on an error shape it does not know (anything unrecognised is classified
by its HTTP status alone), or call a block, a privilege or an overload a mapping problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_DOCUMENT_STATUSES = frozenset({400, 409, 413, 422})
"""Per-item statuses about the document itself (409 ``create`` conflict = already stored, not an error)."""

_HOLD_TYPES = frozenset(
    {
        "cluster_block_exception",
        "es_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
        "no_shard_available_action_exception",
        "index_closed_exception",
        "index_not_found_exception",
        "security_exception",
    }
)
"""Item error types that are the cluster's state, whatever status comes with them."""

_NO_WRITE_INDEX = "no write index is defined for alias"
_BLOCK_KINDS = frozenset({"flood-stage", "write-block", "read-only", "block"})


@dataclass(frozen=True)
class Hold:
    """Elasticsearch cannot take documents now; they are fine and wait until it can.

    ``cause`` names it for a person ("the flood-stage disk watermark block on index [logs]"),
    ``detail`` is Elasticsearch's own answer (``HTTP 429 cluster_block_exception: …``), ``advice`` says
    what to do about it. ``kind`` is short and stable: an episode lasts while the kind does not change.
    """

    kind: str
    cause: str
    detail: str
    advice: str

    @property
    def is_block(self) -> bool:
        """Whether it is a block (index or cluster), rather than an overload, a privilege, …"""
        return self.kind in _BLOCK_KINDS

    def describe(self) -> str:
        """``<cause> (<detail>)``, for a log line."""
        return f"{self.cause} ({self.detail})"


def classify_item(status: int, error: Any, index: str) -> Hold | None:
    """A failed bulk item: ``None`` when the document itself was refused, else why it must wait.

    ``status`` and ``error`` are the item's ``status`` and ``error`` (a mapping with ``type`` and
    ``reason``, or the text of a failed request); ``index`` is the configured index or alias, used in
    the advice.
    """
    kind, reason = _type_and_reason(error)
    if kind in _HOLD_TYPES or (status not in _DOCUMENT_STATUSES and status >= 400):
        return _hold(status, kind, reason, index)
    if kind == "illegal_argument_exception" and _NO_WRITE_INDEX in reason:
        return _hold(status, kind, reason, index)
    return None


def classify_request(status: int, body: Any, index: str) -> Hold | None:
    """A whole bulk request refused: a :class:`Hold` when it is a block (cluster-wide, e.g.
    ``cluster.blocks.read_only``), else ``None`` (the caller treats it as an outage as before)."""
    cause = body.get("error") if isinstance(body, Mapping) else None
    kind, reason = _type_and_reason(cause)
    if kind != "cluster_block_exception":
        return None
    return _hold(status, kind, reason, index)


def _type_and_reason(error: Any) -> tuple[str, str]:
    if isinstance(error, Mapping):
        return str(error.get("type") or ""), str(error.get("reason") or "")
    return "", str(error or "")


def _settings_call(index: str, setting: str) -> str:
    return f"PUT {index}/_settings " + json.dumps({setting: None})


def _cluster_call(setting: str) -> str:
    return "PUT _cluster/settings " + json.dumps({"persistent": {setting: None}})


def _hold(status: int, kind: str, reason: str, index: str) -> Hold:
    detail = f"HTTP {status} {kind}: {reason}" if kind else f"HTTP {status}: {reason}"
    text = reason.lower()
    if kind == "cluster_block_exception":
        return _block(text, detail, index)
    if kind in ("es_rejected_execution_exception", "circuit_breaking_exception") or status == 429:
        return Hold(
            "overload",
            "Elasticsearch is overloaded and refuses writes for now",
            detail,
            "this usually passes by itself; if it lasts, the cluster needs more write capacity or memory",
        )
    if kind == "index_closed_exception":
        return Hold("closed", f"index [{index}] is closed", detail, f"open it: POST {index}/_open")
    if kind == "index_not_found_exception":
        return Hold(
            "missing",
            f"index [{index}] does not exist and may not be created",
            detail,
            f"create it with `otel-openreplay es setup --index {index}`",
        )
    if kind == "security_exception" and "auto_create" in reason:
        return Hold(
            "missing",
            f"index [{index}] does not exist and the writer may not create it (no auto_configure)",
            detail,
            f"create it with `otel-openreplay es setup --index {index}`, or give the writer auto_configure",
        )
    if kind == "security_exception" or status in (401, 403):
        return Hold(
            "privilege",
            f"the writer may not write to index [{index}]",
            detail,
            f"give it create_doc and auto_configure: `otel-openreplay es api-key --for writer --index {index}`",
        )
    if _NO_WRITE_INDEX in reason:
        return Hold(
            "no-write-index",
            f"alias [{index}] has no write index",
            detail,
            "mark one of its indices is_write_index (POST _aliases), or run `otel-openreplay es setup`",
        )
    return Hold(
        "unavailable",
        f"Elasticsearch cannot write to index [{index}] for now",
        detail,
        "it usually recovers by itself (shards starting or relocating); check the cluster's health",
    )


def _block(text: str, detail: str, index: str) -> Hold:
    """Which block, from the reason Elasticsearch gives (``… blocked by: [FORBIDDEN/8/index write (api)]``)."""
    cluster_wide = text.startswith("blocked by") or "cluster read-only" in text
    if "flood-stage" in text or "allow delete" in text or "allow-delete" in text:
        lift = (
            _cluster_call("cluster.blocks.read_only_allow_delete")
            if cluster_wide
            else _settings_call(index, "index.blocks.read_only_allow_delete")
        )
        return Hold(
            "flood-stage",
            ("a cluster-wide" if cluster_wide else f"index [{index}] has a")
            + " read-only-allow-delete block (the flood-stage disk watermark)",
            detail,
            "free disk space on the data nodes: Elasticsearch >= 7.4 lifts the block itself once disk use "
            f"falls below the high watermark (older versions: {lift})",
        )
    if "index write" in text:
        return Hold(
            "write-block",
            f"index [{index}] has a write block (index.blocks.write)",
            detail,
            "find who set it (an operator, or a lifecycle step such as shrink), then lift it: "
            + _settings_call(index, "index.blocks.write"),
        )
    if "read-only" in text:
        lift = (
            _cluster_call("cluster.blocks.read_only")
            if cluster_wide
            else _settings_call(index, "index.blocks.read_only")
        )
        where = "the cluster is" if cluster_wide else f"index [{index}] is"
        return Hold("read-only", f"{where} read-only", detail, f"find who set it, then lift it: {lift}")
    return Hold(
        "block",
        f"Elasticsearch blocks writes to index [{index}]",
        detail,
        "it clears once the cluster recovers (a master elected, its state recovered); check the cluster's health",
    )
