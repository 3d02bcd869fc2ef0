"""The connection of one ``otel-openreplay es`` command: its settings from the flags, its client.

Shared by every ``es`` subcommand module, so none of them imports another. It must never keep a
client beyond the command (``client_for`` closes it) nor let a transport retry loop make a CLI hang.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from otel_openreplay.connection import ConnectionSettings, make_client


def settings_from_args(args: argparse.Namespace) -> ConnectionSettings:
    """The connection settings: the command's flags, then the ``OPENREPLAY_ES_*`` variables."""
    return ConnectionSettings.from_env(
        url=args.url,
        api_key=args.api_key,
        user=args.user,
        password=args.password,
        ca_certs=args.ca_certs,
        index=getattr(args, "index", None),
    )


def client_for(settings: ConnectionSettings) -> contextlib.closing[Any]:
    """A client for one command, closed afterwards (one transport retry: a CLI should not hang)."""
    return contextlib.closing(make_client(settings, max_retries=1))
