"""What an Elasticsearch server refuses because of its version or settings, said so that a user can act.

The CLI's error funnel asks :func:`explain_refusal` about every error answer: for a refusal that comes
from the server's version or configuration (API keys turned off on 7.x over plain HTTP, a request
parameter the server is too old to know, a client major the server does not speak) it returns a
message naming the server's version and a tip saying what to do; for anything else, ``None``.
:func:`server_version` reads the version (best effort: ``GET /``, else the local node's info).
:func:`client_mismatch` is the one place that explains a client major the server refuses (a 9.x client
on an 8.x server): the CLI's funnel and :func:`otel_openreplay.connection.describe_api_error` (the
doctor's findings, the exporter's log) all say it with its words. It imports nothing of the package.

It must never raise (it runs while reporting another error), nor send anything but read-only requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

API_KEYS_SETTING = "xpack.security.authc.api_key.enabled: true"
"""The elasticsearch.yml line that turns API keys on where they are off (7.x without HTTP TLS)."""

_UNKNOWN_PARAMETER = re.compile(r"unrecognized parameters?: \[([^\]]+)\]")
_ACCEPTED_MAJORS = re.compile(r"must be either version (\d+) or (\d+), but found (\d+)")


def server_version(client: Any) -> str | None:
    """The server's version number (``7.17.29``), or None if it cannot be read with these credentials.

    Asks ``GET /`` and, where that is refused (405 on some distributions, or no ``monitor``
    privilege), the local node's info; through the client's transport with plain JSON headers, since
    the client itself would add a ``compatible-with`` header that a server of another major refuses.
    """
    from elastic_transport import HttpHeaders

    headers = HttpHeaders(getattr(client, "_headers", {}))  # the client's auth; private, hence best effort
    headers.pop("content-type", None)
    headers["accept"] = "application/json"
    for target in ("/", "/_nodes/_local?filter_path=nodes.*.version"):
        try:
            meta, body = client.transport.perform_request("GET", target, headers=headers)
        except Exception:  # noqa: S112 (best effort while reporting another error)
            continue
        found = _version_in(body) if 200 <= meta.status < 300 else None
        if found:
            return found
    return None


def _version_in(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    version = body.get("version")
    if isinstance(version, Mapping) and isinstance(version.get("number"), str):
        return str(version["number"])
    nodes = body.get("nodes")
    if isinstance(nodes, Mapping):
        for node in nodes.values():
            if isinstance(node, Mapping) and isinstance(node.get("version"), str):
                return str(node["version"])
    return None


def explain_refusal(error: Any, version: str | None) -> tuple[str, str] | None:
    """``(message, tip)`` for a refusal caused by the server's version or settings, else None.

    ``version`` is the server's version if known (see :func:`server_version`); the message names it.
    """
    cause = _cause(error)
    kind, reason = cause.get("type", ""), cause.get("reason", "")
    server = f"Elasticsearch {version}" if version else "this Elasticsearch server (version unknown)"
    if kind == "feature_not_enabled_exception" and "api keys" in reason.lower():
        return (
            f"{server} has API keys turned off ({kind}: {reason})",
            f"add `{API_KEYS_SETTING}` to elasticsearch.yml on every node and restart them (7.x turns API "
            "keys off by default unless HTTP TLS is on: enabling HTTPS also turns them on); or, without API "
            "keys, give the collector and OpenReplay users with the roles `otel-openreplay es api-key` would "
            "grant (README, Compatibility)",
        )
    unknown = _UNKNOWN_PARAMETER.search(reason)
    if unknown:
        return (
            f"{server} does not know the request parameter [{unknown.group(1)}] ({kind}: {reason})",
            "the server is older than this request needs: see the README's Compatibility table for what "
            "works on your version, or upgrade Elasticsearch",
        )
    return client_mismatch(error, version)


def client_mismatch(error: Any, version: str | None = None) -> tuple[str, str] | None:
    """``(message, tip)`` when the server refused the Python client's major (a 9.x client on an 8.x
    server), else None.

    ``version`` is the server's version if known; the message names it.
    """
    if not is_version_mismatch(error):
        return None
    cause = _cause(error)
    kind, reason = cause.get("type", ""), cause.get("reason", "")
    server = f"Elasticsearch {version}" if version else "this Elasticsearch server (version unknown)"
    majors = _ACCEPTED_MAJORS.search(f"{reason} {error} {getattr(error, 'body', '')}")  # causes included
    if majors:
        newest = max(int(majors.group(1)), int(majors.group(2)))
        return (
            f"{server} speaks the client API of version {majors.group(1)} or {majors.group(2)}, not the "
            f"{majors.group(3)}.x Python client installed here ({kind}: {reason})",
            f"pip install \"elasticsearch<{newest + 1}\" (the client's major must not be newer than the server's)",
        )
    return (
        f"{server} refused the Python client's compatibility header: the client's major is newer than the "
        f"server's ({kind}: {reason})",
        "pip install \"elasticsearch<9\" for an 8.x server (the client's major must not be newer than the server's)",
    )


def is_version_mismatch(error: Any) -> bool:
    """Whether an error is the server refusing the client's ``compatible-with`` media type."""
    text = str(getattr(error, "body", "")) + " " + str(error)
    return "compatible-with" in text or "media_type_header_exception" in text


def _cause(error: Any) -> dict[str, str]:
    body = getattr(error, "body", None)
    root = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(root, Mapping):
        return {"type": "", "reason": str(root or "")}
    return {"type": str(root.get("type", "")), "reason": str(root.get("reason", ""))}
