"""The ``otel-openreplay`` command (also ``python -m otel_openreplay``): set up and check the pieces.

This package is the command's root: :func:`main` builds the parser (:func:`build_parser`), runs the
chosen command and sends every failure through one funnel (:mod:`otel_openreplay.cli.errors`) that
prints ``ERROR: …`` and ``TIP: …`` to stderr, never a traceback, and returns a distinct exit code
(:class:`otel_openreplay.exit_codes.ExitCode`). One module per command family parses its arguments and
prints; the work is in the package's other modules:

- :mod:`otel_openreplay.cli.es`: ``es setup`` (the index template and the index), ``es api-key``
  (least-privilege keys), ``es check`` (OpenReplay's own reads for a session); connection flags
  default to the ``OPENREPLAY_ES_*`` variables.
- :mod:`otel_openreplay.cli.link`: ``link``, a session's replay link (:mod:`otel_openreplay.replay`).
- :mod:`otel_openreplay.cli.cors`: ``check-cors``, whether a browser would send the session header to
  an API (:mod:`otel_openreplay.cors`).
- :mod:`otel_openreplay.cli.collector`: ``collector config|manifest``, the drop-in's shipped files.

Secrets are never printed, except the new key ``es api-key`` exists to show once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import metadata

from otel_openreplay.cli import collector, cors, es, link
from otel_openreplay.cli.errors import CliError, explain_error, fail
from otel_openreplay.exit_codes import ExitCode
from otel_openreplay.settings import SettingsError

__all__ = ["PROG", "CliError", "build_parser", "explain_error", "main"]

PROG = "otel-openreplay"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (commands ``es setup|api-key|check``, ``link``, ``check-cors``, ``collector``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Put a service's backend errors on OpenReplay's replay: set up and check Elasticsearch, "
        "print replay links, check the browser's CORS preflight, write the collector drop-in's files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    es.add_commands(commands)
    link.add_command(commands)
    cors.add_command(commands)
    collector.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else int(ExitCode.USAGE))
    try:
        return int(args.handler(args))
    except CliError as error:
        fail(str(error), error.tip)
        return int(error.code)
    except SettingsError as error:
        fail(str(error), "fix the variable or pass the matching --flag")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        fail("interrupted")
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # the funnel: whatever Elasticsearch or the network says, no traceback
        message, tip, code = es.server_refusal(error, args) or explain_error(error)
        fail(message, tip)
        return int(code)


def _version() -> str:
    try:
        return metadata.version("otel-openreplay")
    except metadata.PackageNotFoundError:
        return "unknown"
