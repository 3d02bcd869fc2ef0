"""The ``otel-openreplay`` command (also ``python -m otel_openreplay``): set up and check Elasticsearch.

``es setup`` installs the index template and the index, ``es api-key`` makes least-privilege keys,
``es check`` runs OpenReplay's own reads for a session and says what the replay shows. This module
only parses arguments and prints: the work is in :mod:`otel_openreplay.template`,
:mod:`otel_openreplay.keys` and :mod:`otel_openreplay.doctor`.

Every failure goes through one funnel that prints ``ERROR: …`` and ``TIP: …`` to stderr, never a
traceback, and returns a distinct exit code (:class:`otel_openreplay.doctor.ExitCode`). Connection
flags default to the ``OPENREPLAY_ES_*`` variables. Secrets are never printed, except the new key
``es api-key`` exists to show once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from otel_openreplay.connection import (
    OPENREPLAY_ES_API_KEY,
    OPENREPLAY_ES_CA_CERTS,
    OPENREPLAY_ES_INDEX,
    OPENREPLAY_ES_PASSWORD,
    OPENREPLAY_ES_URL,
    OPENREPLAY_ES_USER,
    ConnectionSettings,
    describe_api_error,
    is_version_mismatch,
    make_client,
    redact_url,
)
from otel_openreplay.doctor import ExitCode
from otel_openreplay.settings import SettingsError

PROG = "otel-openreplay"


class CliError(Exception):
    """A failure to report as ``ERROR``/``TIP`` with an exit code."""

    def __init__(self, message: str, tip: str = "", code: ExitCode = ExitCode.NOTHING) -> None:
        super().__init__(message)
        self.tip = tip
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``es setup``, ``es api-key``, ``es check``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Elasticsearch tools for putting a service's backend errors on OpenReplay's replay.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
    setup.set_defaults(handler=_setup)

    api_key = es_commands.add_parser(
        "api-key",
        parents=[connection],
        help="create a least-privilege API key for OpenReplay or for the writers",
        description="openreplay: `read` on the index only (--legacy adds cluster `monitor` for OpenReplay "
        "<= 1.20's connection test). writer: `create_doc` + `auto_configure` on the index. The "
        "credentials used must be allowed to create API keys (manage_own_api_key).",
    )
    api_key.add_argument("--for", dest="purpose", required=True, choices=("openreplay", "writer"), help="who uses it")
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
        description="Exit codes: 0 found, 1 nothing found, 2 usage, 3 cannot connect, 4 credentials or "
        "privilege refused, 5 index or mapping problem.",
    )
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument("--token", help="session token (tracker.getSessionToken(), OpenReplay <= 1.20)")
    target.add_argument("--session-id", help="decimal session id (tracker.getSessionID(), OpenReplay >= 1.21)")
    check.add_argument("--since", default="24h", help="OpenReplay <= 1.20's poll window (default 24h: its first poll)")
    check.add_argument("--index", help=index_help)
    check.add_argument("--json", action="store_true", help="print one JSON object with findings per generation")
    check.set_defaults(handler=_check)
    _add_collector_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else ExitCode.USAGE)
    try:
        return int(args.handler(args))
    except CliError as error:
        _fail(str(error), error.tip)
        return int(error.code)
    except SettingsError as error:
        _fail(str(error), "fix the variable or pass the matching --flag")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as error:  # the funnel: whatever Elasticsearch or the network says, no traceback
        message, tip, code = explain_error(error)
        _fail(message, tip)
        return int(code)


def explain_error(error: BaseException) -> tuple[str, str, ExitCode]:
    """Message, tip and exit code for an error from the Elasticsearch client (or anything else)."""
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException, NotFoundError
    from elasticsearch import ConnectionError as ESConnectionError

    if isinstance(error, ESConnectionError):
        return (
            f"cannot connect to Elasticsearch: {error}",
            f"check the URL (--url / ${OPENREPLAY_ES_URL}), that the server runs, and TLS (--ca-certs)",
            ExitCode.CONNECT,
        )
    if isinstance(error, ApiError) and is_version_mismatch(error):
        return (
            f"Elasticsearch refused the client's media type: {describe_api_error(error)}",
            "the server is 8.x and the Python client is not: pip install 'elasticsearch<9'",
            ExitCode.CONNECT,
        )
    if isinstance(error, AuthenticationException):
        return (
            f"Elasticsearch refused the credentials: {describe_api_error(error)}",
            f"check --api-key / ${OPENREPLAY_ES_API_KEY} (the encoded form) or --user/--password",
            ExitCode.AUTH,
        )
    if isinstance(error, AuthorizationException):
        return (
            f"these credentials may not do this: {describe_api_error(error)}",
            "run it as a user with the privilege named above (setup: manage_index_templates and "
            "create_index/manage on the index; api-key: manage_own_api_key)",
            ExitCode.AUTH,
        )
    if isinstance(error, NotFoundError):
        return (
            f"not found: {describe_api_error(error)}",
            "run `otel-openreplay es setup` first",
            ExitCode.INDEX,
        )
    if isinstance(error, ApiError):
        return (f"Elasticsearch refused the request: {describe_api_error(error)}", "", ExitCode.NOTHING)
    return (f"{type(error).__name__}: {error}", "", ExitCode.NOTHING)


def _setup(args: argparse.Namespace) -> int:
    from otel_openreplay.template import TEMPLATE_PRIORITY, setup_index

    settings = _settings(args)
    with _client(settings) as client:
        try:
            report = setup_index(client, settings.index)
        except Exception as error:
            if "same priority" in str(error) or "overlapping" in str(error):
                raise CliError(
                    f"another index template covers `{settings.index}` with the same priority: {error}",
                    "remove or re-prioritise the other template, then run setup again",
                    ExitCode.INDEX,
                ) from None
            raise
    print(f"Index template {report.template}: installed (pattern `{report.index}`, priority {TEMPLATE_PRIORITY}).")
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
    settings = _settings(args)
    with _client(settings) as client:
        report = run_check(
            client, target, index=settings.index, since_seconds=since, credentials=settings.auth_description
        )
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return int(report.exit_code)
    fatal = [f for f in report.findings if f.code in ("connect", "auth")]
    if fatal:
        raise CliError(fatal[0].text, fatal[0].tip, report.exit_code)
    print(render_text(report))
    return int(report.exit_code)


def _settings(args: argparse.Namespace) -> ConnectionSettings:
    return ConnectionSettings.from_env(
        url=args.url,
        api_key=args.api_key,
        user=args.user,
        password=args.password,
        ca_certs=args.ca_certs,
        index=getattr(args, "index", None),
    )


def _client(settings: ConnectionSettings) -> contextlib.closing[Any]:
    """A client for one command, closed afterwards (one transport retry: a CLI should not hang)."""
    return contextlib.closing(make_client(settings, max_retries=1))


def _fail(message: str, tip: str = "") -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    if tip:
        print(f"TIP: {tip}", file=sys.stderr)


def _version() -> str:
    try:
        return metadata.version("otel-openreplay")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- collector: the drop-in's files, from the installed package ----------------------------------


def _add_collector_commands(commands: Any) -> None:
    """``collector config`` / ``collector manifest``: write the shipped file to stdout or ``-o FILE``."""
    from otel_openreplay.collector_files import FILES

    collector = commands.add_parser(
        "collector",
        help="write the collector drop-in's config or builder manifest (shipped in the package)",
        description="The files of the collector drop-in, as installed with this package: run the config "
        "with a stock otelcol-contrib v0.156.0 (or the minimal build from the manifest).",
    )
    what = collector.add_subparsers(dest="collector_file", metavar="FILE", required=True)
    helps = {
        "config": f"{FILES['config']}: the collector config (settings: OPENREPLAY_* variables)",
        "manifest": f"{FILES['manifest']}: the OpenTelemetry Collector Builder (ocb) manifest",
    }
    for name, help_text in helps.items():
        command = what.add_parser(name, help=help_text, description=help_text)
        command.add_argument("-o", "--output", metavar="FILE", help="write to FILE (replaced) instead of stdout")
        command.set_defaults(handler=_collector_file)


def _collector_file(args: argparse.Namespace) -> int:
    from otel_openreplay.collector_files import FILES, read

    text = read(args.collector_file)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as error:
        raise CliError(
            f"cannot write {args.output}: {error.strerror}", "give a writable path to -o", ExitCode.USAGE
        ) from error
    print(f"wrote {FILES[args.collector_file]} to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
