"""``otel-openreplay es setup --retention`` and ``es rotate``: keep the ``logs`` index bounded by age.

``es setup --retention 30d`` puts the index under a retention (:func:`otel_openreplay.retention.enable`:
creates the alias layout, migrates a plain index, or changes the retention); ``es rotate`` is what a
schedule runs with the maintenance key (:func:`otel_openreplay.retention.rotate`). This module parses
and prints; the work is in :mod:`otel_openreplay.retention`. It never prints a secret.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from otel_openreplay.cli.connect import client_for, settings_from_args
from otel_openreplay.cli.errors import CliError
from otel_openreplay.exit_codes import ExitCode


def add_arguments(setup: argparse.ArgumentParser) -> None:
    """``--retention`` and ``--rollover`` on ``es setup``."""
    setup.add_argument(
        "--retention",
        help="keep documents this long, e.g. 30d (turns the index into a write alias over numbered indices, "
        "migrating a plain index; `es rotate` then deletes what is older)",
    )
    setup.add_argument("--rollover", help="with --retention: how long one numbered index is written (default 1d)")


def add_rotate(es_commands: Any, connection: argparse.ArgumentParser, index_help: str) -> None:
    """``es rotate``."""
    rotate = es_commands.add_parser(
        "rotate",
        parents=[connection],
        help="roll the index over and delete what is older than the retention (run it on a schedule)",
        description="Rolls the write index over once it is older than the rollover period, and deletes whole "
        "indices whose newest document is older than the retention set by `es setup --retention`. Safe to run "
        "often. Credentials: the maintenance key (`es api-key --for maintenance`). Exit codes: 0 done, "
        "4 privilege refused, 5 no retention set.",
    )
    rotate.add_argument("--index", help=index_help)
    rotate.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    rotate.add_argument("--json", action="store_true", help="print one JSON object with the actions")
    rotate.set_defaults(handler=_rotate)


def policy_from(args: argparse.Namespace) -> Any:
    """The :class:`~otel_openreplay.retention.Policy` of ``--retention``/``--rollover``, or None."""
    from otel_openreplay.retention import DEFAULT_ROLLOVER, Policy

    if args.retention is None:
        if args.rollover is not None:
            raise CliError("--rollover needs --retention", "add --retention 30d (or drop --rollover)", ExitCode.USAGE)
        return None
    try:
        return Policy(args.retention, args.rollover or DEFAULT_ROLLOVER)
    except ValueError as error:
        raise CliError(str(error), "e.g. --retention 30d --rollover 1d", ExitCode.USAGE) from None


def setup_with_retention(client: Any, index: str, policy: Any) -> Any:
    """Run :func:`~otel_openreplay.retention.enable`, print its steps; returns the mapping check's report."""
    from otel_openreplay.retention import RetentionError, enable

    try:
        report = enable(client, index, policy)
    except RetentionError as error:
        raise CliError(str(error), error.tip, ExitCode.INDEX) from None
    for step in report.steps:
        print(f"Retention: {step}.")
    print(
        f"Retention of {index}: {policy.retention} (a new index every {policy.rollover}); "
        "schedule `otel-openreplay es rotate` (hourly is fine) with the maintenance key."
    )
    return report.setup


def _rotate(args: argparse.Namespace) -> int:
    from otel_openreplay.retention import RetentionError, rotate

    settings = settings_from_args(args)
    with client_for(settings) as client:
        try:
            report = rotate(client, settings.index, dry_run=args.dry_run)
        except RetentionError as error:
            raise CliError(str(error), error.tip, ExitCode.INDEX) from None
    if args.json:
        print(json.dumps(report.as_json()))
        return int(ExitCode.FOUND)
    would = "would " if args.dry_run else ""
    print(f"Retention of {report.index}: {report.policy.retention}, a new index every {report.policy.rollover}.")
    for action in report.actions:
        if action.kind == "rollover":
            done = f" -> {report.rolled_over_to}" if report.rolled_over_to else ""
            print(f"  {action.index}: {would}roll over{done} ({action.reason})")
        elif action.kind == "delete":
            print(f"  {action.index}: {would}delete ({action.reason})")
        else:
            print(f"  {action.index}: keep ({action.reason})")
    return int(ExitCode.FOUND)
