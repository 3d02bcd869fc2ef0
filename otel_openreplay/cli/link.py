"""``otel-openreplay link``: print a session's replay link, and the ``Replay:`` line ``es check`` adds.

Parses arguments and prints; the link itself is :mod:`otel_openreplay.replay`'s, the session id is read
by :mod:`otel_openreplay.session`. It never connects anywhere: a link is computed, not looked up.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from otel_openreplay.cli.errors import CliError
from otel_openreplay.exit_codes import ExitCode

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


def add_command(commands: Any) -> None:
    """Add ``link`` to the root parser's subcommands."""
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

    url = replay_url(args)
    if url is None:
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
    print(replay_link(url, session_id, moment))
    start = session_start_ms(session_id)
    if jumpto_ms(start, moment) is None:
        print(
            f"note: that time is not within a day after the session's start ({_rfc3339_ms(start)}, read from "
            "its id): the link opens the replay at its start",
            file=sys.stderr,
        )
    return int(ExitCode.FOUND)


def replay_url(args: argparse.Namespace) -> str | None:
    """``--replay-url`` or ``OTEL_OPENREPLAY_REPLAY_URL``, validated (a SettingsError names which)."""
    import os

    from otel_openreplay.replay import parse_replay_url
    from otel_openreplay.settings import OTEL_OPENREPLAY_REPLAY_URL

    if getattr(args, "replay_url", None) is not None:
        return parse_replay_url("--replay-url", args.replay_url)
    return parse_replay_url(OTEL_OPENREPLAY_REPLAY_URL, os.environ.get(OTEL_OPENREPLAY_REPLAY_URL, ""))


def check_replay_link(url: str | None, report: Any) -> str | None:
    """The checked session's replay link, opened at the first record shown, when a replay URL is known."""
    from otel_openreplay.doctor import parse_rfc3339
    from otel_openreplay.replay import replay_link

    session_id = report.target.session_id
    if url is None or session_id is None:
        return None
    times = [parse_rfc3339(entry.time) for generation in report.generations for entry in generation.shown]
    # exact integer arithmetic: a float timestamp times 1000 can land 1 ms short (2038-04-10T12:48:52.621Z)
    moments = [(moment - _EPOCH) // _ONE_MS for moment in times if moment is not None]
    return replay_link(url, session_id, min(moments) * 1_000_000 if moments else None)


def _rfc3339_ms(epoch_ms: int | None) -> str:
    from otel_openreplay.layout import format_time

    return (format_time(epoch_ms * 1_000_000) if epoch_ms is not None else None) or "unknown"
