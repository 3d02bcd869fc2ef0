"""``otel-openreplay collector config|manifest``: write the drop-in's files, from the installed package.

The files are :mod:`otel_openreplay.collector_files`'s, shipped in the wheel; this module only chooses
where they go (stdout or ``-o FILE``). It never edits their text and never writes anywhere else.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from otel_openreplay.cli.errors import CliError
from otel_openreplay.exit_codes import ExitCode


def add_commands(commands: Any) -> None:
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
