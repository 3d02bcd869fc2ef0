"""``otel-openreplay check-cors``: would a browser send the session header to an API?

Parses arguments and prints; the preflight and the browser's judgement are :mod:`otel_openreplay.cors`'s.
It never sends anything but that one ``OPTIONS`` request, and never follows the API's answer elsewhere.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from otel_openreplay.cli.errors import CliError
from otel_openreplay.exit_codes import CHECK_CORS_CODES, ExitCode


def add_command(commands: Any) -> None:
    """Add ``check-cors`` to the root parser's subcommands."""
    cors = commands.add_parser(
        "check-cors",
        help="would the browser send the session header to this API? (sends the CORS preflight)",
        description="Sends the preflight a browser sends before calling URL from a page on ORIGIN with the "
        "session header, and judges the answer as the browser does. Only OPTIONS is sent. Exit codes: "
        f"{CHECK_CORS_CODES}.",
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
