"""A small HTTP server on 127.0.0.1 in a daemon thread: the frontend page, recording APIs, the stand-in ingest.

:class:`LoopbackServer` runs a ``ThreadingHTTPServer`` for one handler class on a free loopback port for
the length of a ``with`` block; a browser closing a connection early (a page left, a beacon cancelled)
is not logged as an error.

What it must never do: listen on anything but 127.0.0.1, or outlive its ``with`` block. It is test
tooling: nothing under ``otel_openreplay`` may import it.
"""

from __future__ import annotations

import http.server
import sys
import threading
from typing import Any


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser closing a connection early is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1 (a free port) in a daemon thread named ``name``, inside ``with``."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], name: str) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
