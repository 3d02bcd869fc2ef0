"""The exit codes of every ``otel-openreplay`` command, in one table.

Users script against these numbers (the README's "Exit codes" line lists them), so a number never changes
meaning: add a code, never renumber one. ``es check`` reads them as its verdict (found / nothing found),
``check-cors`` as its own (allowed / refused); every command shares the error codes 2-6, so one failure
has one number whichever command met it. The doctor (:mod:`otel_openreplay.doctor`) and the CORS check
(:mod:`otel_openreplay.cors`) put a code on their reports; the command line
(:mod:`otel_openreplay.cli`) returns them.

Standard library only; it must never import another module of the package (both the reports and the
command line import it).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means. Aliases name the same number in a command's own words."""

    OK = 0
    """Done: ``es check`` found records the replay shows; ``check-cors``: the browser sends the header."""
    NOTHING = 1
    """``es check``: nothing the replay would show; ``check-cors``: the browser refuses; other failures."""
    USAGE = 2
    """A bad argument or setting (argparse's own code)."""
    CONNECT = 3
    """Cannot connect (or a client major the server refuses)."""
    AUTH = 4
    """Credentials or a privilege refused."""
    INDEX = 5
    """The index is missing or its mapping breaks OpenReplay."""
    UNSUPPORTED = 6
    """The server's version or settings refuse it (API keys off on 7.x, a parameter it is too old for)."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT, as shells report it)."""

    FOUND = 0
    """``es check``'s name for :attr:`OK`."""
    ALLOWED = 0
    """``check-cors``'s name for :attr:`OK`."""
    REFUSED = 1
    """``check-cors``'s name for :attr:`NOTHING`."""


ES_CHECK_CODES = (
    "0 found, 1 nothing found, 2 usage, 3 cannot connect (or a client major the server refuses), "
    "4 credentials or privilege refused, 5 index or mapping problem, 6 the server's version or settings refuse it"
)
"""``es check``'s codes in words: its ``--help`` and the README's "Exit codes" line say exactly this."""

CHECK_CORS_CODES = "0 allowed, 1 refused, 2 usage, 3 cannot connect"
"""``check-cors``'s codes in words (its ``--help``)."""
