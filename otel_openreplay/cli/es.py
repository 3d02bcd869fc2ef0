"""``otel-openreplay es setup|api-key|check|rotate``: set up and check the Elasticsearch side.

``setup`` installs the index template and the index (:mod:`otel_openreplay.template`; with
``--retention``, :mod:`otel_openreplay.cli.retention`), ``api-key`` makes least-privilege keys
(:mod:`otel_openreplay.keys`), ``check`` runs OpenReplay's own reads for a session
(:mod:`otel_openreplay.doctor`) and reports the retention, ``rotate`` applies the retention. This
module parses the connection flags (defaults: the ``OPENREPLAY_ES_*`` variables), opens one client per
command and prints; the work is in those modules.
It never prints a secret, except the new key ``es api-key`` exists to show once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from otel_openreplay.cli import retention as retention_cli
from otel_openreplay.cli.connect import client_for as _client
from otel_openreplay.cli.connect import settings_from_args as _settings
from otel_openreplay.cli.errors import CliError
from otel_openreplay.cli.link import check_replay_link, replay_url
from otel_openreplay.connection import (
    OPENREPLAY_ES_API_KEY,
    OPENREPLAY_ES_CA_CERTS,
    OPENREPLAY_ES_INDEX,
    OPENREPLAY_ES_PASSWORD,
    OPENREPLAY_ES_URL,
    OPENREPLAY_ES_USER,
    redact_url,
)
from otel_openreplay.exit_codes import ES_CHECK_CODES, ExitCode


def add_commands(commands: Any) -> None:
    """Add ``es`` and its subcommands ``setup``, ``api-key``, ``check`` to the root parser's subcommands."""
    es = commands.add_parser("es", help="set up and check the Elasticsearch side", description="Elasticsearch tools.")
    es_commands = es.add_subparsers(dest="es_command", metavar="ES_COMMAND", required=True)

    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection (defaults: the environment variables)")
    group.add_argument("--url", help=f"Elasticsearch URL (${OPENREPLAY_ES_URL})")
    group.add_argument("--api-key", help=f"encoded API key (${OPENREPLAY_ES_API_KEY})")
    group.add_argument("--user", help=f"basic-auth user (${OPENREPLAY_ES_USER})")
    group.add_argument("--password", help=f"basic-auth password (${OPENREPLAY_ES_PASSWORD}; prefer the variable)")
    group.add_argument("--ca-certs", help=f"PEM file of the server's CA (${OPENREPLAY_ES_CA_CERTS})")
    index_help = f"index (${OPENREPLAY_ES_INDEX}, default logs)"

    setup = es_commands.add_parser(
        "setup",
        parents=[connection],
        help="install the index template and create the index; check an existing index's mapping",
        description="Idempotent: installs the index template, creates the index, adds missing fields to an "
        "existing index and says exactly what is wrong with its mapping.",
    )
    setup.add_argument("--index", help=index_help)
    retention_cli.add_arguments(setup)
    setup.set_defaults(handler=_setup)

    api_key = es_commands.add_parser(
        "api-key",
        parents=[connection],
        help="create a least-privilege API key for OpenReplay or for the writers",
        description="openreplay: `read` on the index only (--legacy adds cluster `monitor` for OpenReplay "
        "<= 1.20's connection test). writer: `create_doc` + `auto_configure` on the index. maintenance "
        "(`es rotate`): `manage` on the index's alias, `read`, `view_index_metadata`, `monitor`, "
        "`delete_index` on its numbered indices <index>-0*. The credentials used must be allowed to create "
        "API keys (manage_own_api_key).",
    )
    api_key.add_argument(
        "--for", dest="purpose", required=True, choices=("openreplay", "writer", "maintenance"), help="who uses it"
    )
    api_key.add_argument("--index", help=index_help)
    api_key.add_argument("--legacy", action="store_true", help="add cluster `monitor` (OpenReplay <= 1.20)")
    api_key.add_argument("--name", help="key name (default openreplay-read-<index> / otel-openreplay-write-<index>)")
    api_key.add_argument("--expiration", help="lifetime, e.g. 90d (default: never expires)")
    api_key.add_argument("--json", action="store_true", help='print only {"id", "api_key", "encoded"}')
    api_key.set_defaults(handler=_api_key)

    check = es_commands.add_parser(
        "check",
        parents=[connection],
        help="run OpenReplay's own searches for a session and show what the replay shows",
        description=f"Exit codes: {ES_CHECK_CODES}.",
    )
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument("--token", help="session token (tracker.getSessionToken(), OpenReplay <= 1.20)")
    target.add_argument("--session-id", help="decimal session id (tracker.getSessionID(), OpenReplay >= 1.21)")
    check.add_argument("--since", default="24h", help="OpenReplay <= 1.20's poll window (default 24h: its first poll)")
    check.add_argument("--index", help=index_help)
    check.add_argument("--json", action="store_true", help="print one JSON object with findings per generation")
    check.add_argument("--replay-url", help="OpenReplay dashboard URL with the project ($OTEL_OPENREPLAY_REPLAY_URL)")
    check.set_defaults(handler=_check)

    retention_cli.add_rotate(es_commands, connection, index_help)


def server_refusal(error: Exception, args: argparse.Namespace) -> tuple[str, str, ExitCode] | None:
    """A refusal due to the server's version or settings, naming that version (asked for only then)."""
    from otel_openreplay.compat import explain_refusal, is_version_mismatch, server_version

    if explain_refusal(error, None) is None:
        return None
    version = None
    with contextlib.suppress(Exception), _client(_settings(args)) as client:
        version = server_version(client)
    message, tip = explain_refusal(error, version) or ("", "")
    return message, tip, ExitCode.CONNECT if is_version_mismatch(error) else ExitCode.UNSUPPORTED


def _setup(args: argparse.Namespace) -> int:
    from otel_openreplay.template import TEMPLATE_PRIORITY, setup_index

    settings = _settings(args)
    policy = retention_cli.policy_from(args)
    with _client(settings) as client:
        try:
            if policy is None:
                report = setup_index(client, settings.index)
            else:
                report = retention_cli.setup_with_retention(client, settings.index, policy)
        except Exception as error:
            if "same priority" in str(error) or "overlapping" in str(error):
                raise CliError(
                    f"another index template covers `{settings.index}` with the same priority: {error}",
                    "remove or re-prioritise the other template, then run setup again",
                    ExitCode.INDEX,
                ) from None
            raise
    patterns = ", ".join(f"`{pattern}`" for pattern in report.patterns or [report.index])
    print(f"Index template {report.template}: installed (pattern {patterns}, priority {TEMPLATE_PRIORITY}).")
    print(f"Index {report.index}: {'created' if report.created_index else 'exists'}.")
    if report.added_fields:
        print(f"Mapped missing fields: {', '.join(report.added_fields)}.")
    serious = [p for p in report.problems if p.serious]
    for problem in report.problems:
        print(f"{'PROBLEM' if problem.serious else 'note'}: {problem.text}")
    if serious:
        raise CliError(
            f"the mapping of `{report.index}` breaks OpenReplay ({len(serious)} field(s) above)",
            "a field's type cannot change in place: create a new index with "
            f"`otel-openreplay es setup --index <new>`, reindex `{report.index}` into it, then swap names "
            f"(or delete `{report.index}` and run setup)",
            ExitCode.INDEX,
        )
    print("Ready: OpenReplay can read this index.")
    return int(ExitCode.FOUND)


def _api_key(args: argparse.Namespace) -> int:
    from otel_openreplay.keys import create_key, usage_text

    settings = _settings(args)
    if args.legacy and args.purpose != "openreplay":
        raise CliError("--legacy is for --for openreplay only", "drop --legacy", ExitCode.USAGE)
    with _client(settings) as client:
        key = create_key(
            client,
            args.purpose,
            settings.index,
            legacy=args.legacy,
            name=args.name,
            expiration=args.expiration,
        )
    if args.json:
        print(json.dumps(key.as_json()))
    else:
        print(usage_text(key, args.purpose, redact_url(settings.url), settings.index))
    return int(ExitCode.FOUND)


def _check(args: argparse.Namespace) -> int:
    from otel_openreplay.doctor import Target, parse_duration, render_text, run_check

    try:
        target = Target.of(token=args.token, session_id=args.session_id)
        since = parse_duration(args.since)
    except ValueError as error:
        raise CliError(str(error), "see `otel-openreplay es check --help`", ExitCode.USAGE) from None
    url = _optional_replay_url(args)
    settings = _settings(args)
    with _client(settings) as client:
        report = run_check(
            client, target, index=settings.index, since_seconds=since, credentials=settings.auth_description
        )
        retention = _retention_state(client, settings.index, report.exit_code)
    if args.json:
        answer = report.as_json()
        if retention is not None:
            answer["retention"] = retention.as_json()
        replay = check_replay_link(url, report)
        if replay:
            answer["replay_url"] = replay
        print(json.dumps(answer, ensure_ascii=False))
        return int(report.exit_code)
    fatal = [f for f in report.findings if f.code in ("connect", "auth")]
    if fatal:
        raise CliError(fatal[0].text, fatal[0].tip, report.exit_code)
    print(render_text(report))
    if retention is not None:
        print("\n" + retention.text())
    replay = check_replay_link(url, report)
    if replay:
        print(f"\nReplay: {replay}")
    return int(report.exit_code)


def _retention_state(client: Any, index: str, code: ExitCode) -> Any:
    """The retention part of ``es check`` (:func:`otel_openreplay.retention.retention_state`), or None
    when the check could not connect or log in; it never turns a finished check into a failure."""
    from otel_openreplay.retention import retention_state

    if code in (ExitCode.CONNECT, ExitCode.AUTH):
        return None
    try:
        return retention_state(client, index)
    except Exception:  # the check's answer matters more than this part of it
        return None


def _optional_replay_url(args: argparse.Namespace) -> str | None:
    """The replay URL for the check's ``Replay:`` line; a bad variable only warns (the line is optional).

    A bad ``--replay-url`` flag stays a usage error: the user asked for it on this command line.
    """
    from otel_openreplay.settings import SettingsError

    try:
        return replay_url(args)
    except SettingsError as error:
        if getattr(args, "replay_url", None) is not None:
            raise
        print(f"WARNING: {error}; the check runs without the Replay line", file=sys.stderr)
        return None
