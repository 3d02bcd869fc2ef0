"""The command's error funnel: every failure leaves as ``ERROR: …`` / ``TIP: …`` on stderr and an exit code.

:class:`CliError` is what a command raises for a failure it understands; :func:`explain_error` turns
whatever else escapes a command (the Elasticsearch client's errors, the network's) into a message, a
tip and an exit code (:class:`otel_openreplay.exit_codes.ExitCode`); :func:`fail` prints them. This module
never prints a traceback, never prints a secret, and never decides anything about a command's work.
"""

from __future__ import annotations

import sys

from otel_openreplay.compat import client_mismatch
from otel_openreplay.connection import OPENREPLAY_ES_API_KEY, OPENREPLAY_ES_URL, describe_api_error
from otel_openreplay.exit_codes import ExitCode


class CliError(Exception):
    """A failure to report as ``ERROR``/``TIP`` with an exit code."""

    def __init__(self, message: str, tip: str = "", code: ExitCode = ExitCode.NOTHING) -> None:
        super().__init__(message)
        self.tip = tip
        self.code = code


def explain_error(error: BaseException) -> tuple[str, str, ExitCode]:
    """Message, tip and exit code for an error from the Elasticsearch client (or anything else)."""
    from elasticsearch import (
        ApiError,
        AuthenticationException,
        AuthorizationException,
        ConnectionTimeout,
        NotFoundError,
    )
    from elasticsearch import ConnectionError as ESConnectionError

    if isinstance(error, ConnectionTimeout):  # not a ConnectionError: the server took the connection, then stalled
        return (
            f"Elasticsearch did not answer in time: {error}",
            f"check that the server at --url / ${OPENREPLAY_ES_URL} is up and not overloaded (a node starting or "
            "recovering answers slowly; try again in a minute), and that no proxy or firewall holds the request",
            ExitCode.CONNECT,
        )
    if isinstance(error, ESConnectionError):
        return (
            f"cannot connect to Elasticsearch: {error}",
            f"check the URL (--url / ${OPENREPLAY_ES_URL}), that the server runs, and TLS (--ca-certs)",
            ExitCode.CONNECT,
        )
    mismatch = client_mismatch(error) if isinstance(error, ApiError) else None
    if mismatch is not None:
        return (*mismatch, ExitCode.CONNECT)
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


def fail(message: str, tip: str = "") -> None:
    """Print ``ERROR: message`` and, when there is one, ``TIP: tip`` to stderr."""
    print(f"ERROR: {message}", file=sys.stderr)
    if tip:
        print(f"TIP: {tip}", file=sys.stderr)
