"""The ``otel-openreplay`` command (also ``python -m otel_openreplay``): set up and check the pieces.

``es setup`` installs the index template and the index, ``es api-key`` makes least-privilege keys,
``es check`` runs OpenReplay's own reads for a session and says what the replay shows, ``link`` prints
a session's replay link (:mod:`otel_openreplay.replay`), ``check-cors`` tells whether a browser would
send the session header to an API (:mod:`otel_openreplay.cors`). This module only parses arguments and
prints: the work is in :mod:`otel_openreplay.template`, :mod:`otel_openreplay.keys`,
:mod:`otel_openreplay.doctor` and the modules named above.

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
        "privilege refused, 5 index or mapping problem, 6 the server's version or settings refuse it.",
    )
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument("--token", help="session token (tracker.getSessionToken(), OpenReplay <= 1.20)")
    target.add_argument("--session-id", help="decimal session id (tracker.getSessionID(), OpenReplay >= 1.21)")
    check.add_argument("--since", default="24h", help="OpenReplay <= 1.20's poll window (default 24h: its first poll)")
    check.add_argument("--index", help=index_help)
    check.add_argument("--json", action="store_true", help="print one JSON object with findings per generation")
    check.add_argument("--replay-url", help="OpenReplay dashboard URL with the project ($OTEL_OPENREPLAY_REPLAY_URL)")
    check.set_defaults(handler=_check)
    _add_link_command(commands)

    cors = commands.add_parser(
        "check-cors",
        help="would the browser send the session header to this API? (sends the CORS preflight)",
        description="Sends the preflight a browser sends before calling URL from a page on ORIGIN with the "
        "session header, and judges the answer as the browser does. Only OPTIONS is sent. Exit codes: "
        "0 allowed, 1 refused, 2 usage, 3 cannot connect.",
    )
    cors.add_argument("url", help="an API URL the page calls, e.g. https://api.shop.example/checkout")
    cors.add_argument("--origin", required=True, help="the page's origin, e.g. https://shop.example")
    cors.add_argument(
        "--header",
        dest="headers",
        action="append",
        help="a header the page sends (repeat; default X-OpenReplay-SessionToken, the tracker's "
        "sessionTokenHeader; axios: X-OpenReplay-Session-Token)",
    )
    cors.add_argument("--method", default="GET", help="the request's method (default GET)")
    cors.add_argument("--credentials", action="store_true", help="the request sends cookies (credentials: include)")
    cors.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    cors.add_argument("--json", action="store_true", help="print one JSON object")
    cors.set_defaults(handler=_check_cors)
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
        message, tip, code = _server_refusal(error, args) or explain_error(error)
        _fail(message, tip)
        return int(code)


def _server_refusal(error: Exception, args: argparse.Namespace) -> tuple[str, str, ExitCode] | None:
    """A refusal due to the server's version or settings, naming that version (asked for only then)."""
    from otel_openreplay.compat import explain_refusal, server_version

    if explain_refusal(error, None) is None:
        return None
    version = None
    with contextlib.suppress(Exception), _client(_settings(args)) as client:
        version = server_version(client)
    message, tip = explain_refusal(error, version) or ("", "")
    return message, tip, ExitCode.CONNECT if is_version_mismatch(error) else ExitCode.UNSUPPORTED


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
    replay_url = _replay_url(args)
    settings = _settings(args)
    with _client(settings) as client:
        report = run_check(
            client, target, index=settings.index, since_seconds=since, credentials=settings.auth_description
        )
    if args.json:
        answer = report.as_json()
        replay = _check_replay_link(replay_url, report)
        if replay:
            answer["replay_url"] = replay
        print(json.dumps(answer, ensure_ascii=False))
        return int(report.exit_code)
    fatal = [f for f in report.findings if f.code in ("connect", "auth")]
    if fatal:
        raise CliError(fatal[0].text, fatal[0].tip, report.exit_code)
    print(render_text(report))
    replay = _check_replay_link(replay_url, report)
    if replay:
        print(f"\nReplay: {replay}")
    return int(report.exit_code)


# --- The replay link (`link`, and the line `es check` adds) -------------------------------------------


def _add_link_command(commands: Any) -> None:
    link = commands.add_parser(
        "link",
        help="print the replay link of a session, opened at a moment",
        description="Prints <OTEL_OPENREPLAY_REPLAY_URL>/session/<id>?jumpto=<ms after the session's start>. "
        "The start is read from the session id (a flake id); without a sane offset (before the start, more "
        "than a day after it) the link opens the replay at its start.",
    )
    target = link.add_mutually_exclusive_group(required=True)
    target.add_argument("--token", help="session token (its session id is read from it)")
    target.add_argument("--session-id", help="decimal session id")
    link.add_argument("--at", metavar="TIME", help="RFC 3339 time (with a zone) or epoch ms; default now")
    link.add_argument("--replay-url", help="OpenReplay dashboard URL with the project ($OTEL_OPENREPLAY_REPLAY_URL)")
    link.set_defaults(handler=_link)


def _link(args: argparse.Namespace) -> int:
    import time

    from otel_openreplay.replay import jumpto_ms, parse_moment, replay_link, session_start_ms
    from otel_openreplay.session import session_id_from_token, valid_session_id, valid_token

    replay_url = _replay_url(args)
    if replay_url is None:
        raise CliError(
            "no OpenReplay dashboard URL to link to",
            "set OTEL_OPENREPLAY_REPLAY_URL (or pass --replay-url) to the dashboard URL with the project id, "
            "e.g. https://openreplay.example.com/3",
            ExitCode.USAGE,
        )
    if args.token is not None:
        if valid_token(args.token) is None:
            raise CliError(f"{args.token!r} is not a session token", "give it as the tracker gave it", ExitCode.USAGE)
        session_id = session_id_from_token(args.token)
        if session_id is None:
            raise CliError(
                f"the token {args.token!r} has no session id (its first segment is not base36)",
                "pass --session-id (tracker.getSessionID())",
                ExitCode.USAGE,
            )
    else:
        session_id = valid_session_id(args.session_id)
        if session_id is None:
            raise CliError(f"{args.session_id!r} is not a session id (1-20 digits)", "", ExitCode.USAGE)
    try:
        moment = time.time_ns() if args.at is None else parse_moment(args.at)
    except ValueError as error:
        raise CliError(str(error), "e.g. --at 2026-11-26T14:07:34.120Z or --at 1795702054120", ExitCode.USAGE) from None
    print(replay_link(replay_url, session_id, moment))
    start = session_start_ms(session_id)
    if jumpto_ms(start, moment) is None:
        print(
            f"note: that time is not within a day after the session's start ({_rfc3339_ms(start)}, read from "
            "its id): the link opens the replay at its start",
            file=sys.stderr,
        )
    return int(ExitCode.FOUND)


def _replay_url(args: argparse.Namespace) -> str | None:
    """``--replay-url`` or ``OTEL_OPENREPLAY_REPLAY_URL``, validated (a SettingsError names which)."""
    import os

    from otel_openreplay.replay import parse_replay_url
    from otel_openreplay.settings import OTEL_OPENREPLAY_REPLAY_URL

    if getattr(args, "replay_url", None) is not None:
        return parse_replay_url("--replay-url", args.replay_url)
    return parse_replay_url(OTEL_OPENREPLAY_REPLAY_URL, os.environ.get(OTEL_OPENREPLAY_REPLAY_URL, ""))


def _check_replay_link(replay_url: str | None, report: Any) -> str | None:
    """The checked session's replay link, opened at the first record shown, when a replay URL is known."""
    from otel_openreplay.doctor import parse_rfc3339
    from otel_openreplay.replay import replay_link

    session_id = report.target.session_id
    if replay_url is None or session_id is None:
        return None
    times = [parse_rfc3339(entry.time) for generation in report.generations for entry in generation.shown]
    moments = [int(moment.timestamp() * 1000) for moment in times if moment is not None]
    return replay_link(replay_url, session_id, min(moments) * 1_000_000 if moments else None)


def _rfc3339_ms(epoch_ms: int | None) -> str:
    from otel_openreplay.layout import format_time

    return (format_time(epoch_ms * 1_000_000) if epoch_ms is not None else None) or "unknown"


# --- The CORS preflight (`check-cors`) ---------------------------------------------------------------


def _check_cors(args: argparse.Namespace) -> int:
    import http.client

    from otel_openreplay.cors import TRACKER_HEADER, check, render_text

    try:
        verdict = check(
            args.url,
            args.origin,
            method=args.method,
            headers=args.headers or [TRACKER_HEADER],
            credentials=args.credentials,
            timeout=args.timeout,
        )
    except ValueError as error:
        raise CliError(str(error), "see `otel-openreplay check-cors --help`", ExitCode.USAGE) from None
    except (OSError, http.client.HTTPException) as error:
        raise CliError(
            f"cannot reach {args.url}: {error}", "check the URL and that the API runs", ExitCode.CONNECT
        ) from None
    print(json.dumps(verdict.as_json()) if args.json else render_text(verdict))
    return int(verdict.exit_code)


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
