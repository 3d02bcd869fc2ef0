"""A real Redis for the project's tests: the broker of the Celery example, started and stopped here.

:func:`ensure_installed` finds Debian's ``redis-server`` (installing the package with ``apt-get`` when it is
missing and this runs as root); :class:`RedisServer` runs one server on a free 127.0.0.1 port with no
persistence (``--save '' --appendonly no``) and its own work directory, and :meth:`RedisServer.stop` stops it.

What it must never do: listen on anything but loopback; write anywhere but its own work directory; start,
stop or reconfigure a Redis it did not start (the Debian package's own service is left alone); signal a
process it did not start. It is test tooling: nothing under ``otel_openreplay`` may import it.

Typical use::

    with RedisServer() as server:
        broker = server.url  # redis://127.0.0.1:<port>/0
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

from tests.stack import apt
from tests.stack.process import LOOPBACK, ManagedService, ServiceProcess, StackError, free_ports

PACKAGE = "redis-server"
"""The Debian package (and the binary) providing the server."""


def ensure_installed() -> Path:
    """The ``redis-server`` binary; installs Debian's package first when it is missing and we are root."""
    found = shutil.which(PACKAGE)
    if not found:
        try:
            apt.install([PACKAGE], f"{PACKAGE} is not installed")
        except apt.AptUnavailable as error:
            raise StackError(str(error)) from None
        found = shutil.which(PACKAGE)
    if not found:
        raise StackError(f"{PACKAGE} is still missing after apt-get install")
    return Path(found)


class RedisServer(ManagedService):
    """One ``redis-server`` on 127.0.0.1, no persistence, its log in its own work directory."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_ports(1)[0]
        self.workdir = Path(tempfile.mkdtemp(prefix="otelor-redis-"))
        self._process = ServiceProcess("redis-server", self.workdir / "redis.log")

    @property
    def url(self) -> str:
        """The broker URL for Celery (``redis://127.0.0.1:<port>/0``)."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> None:
        """Launch the server (installing the package first if needed); see :meth:`wait_ready`."""
        if self.running:
            raise StackError("this Redis is already running")
        command = [
            str(ensure_installed()),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        self._process.start(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, cwd=self.workdir)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server answers ``PING``; raise :class:`StackError` with its log if it does not."""
        self._process.wait_ready(self._pong, timeout, StackError, interval=0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server (SIGKILL after ``timeout``) and wait for it to exit."""
        self._process.stop(timeout)

    def remove(self) -> None:
        """Stop the server and delete its work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines)

    def _pong(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self.running else 'stopped'} {self.workdir}>"
