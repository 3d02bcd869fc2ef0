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

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.stack.es import StackError

PACKAGE = "redis-server"
"""The Debian package (and the binary) providing the server."""

_LOOPBACK = "127.0.0.1"
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
_APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=300"]  # other jobs may hold dpkg's lock for a while


def _say(message: str) -> None:
    print(f"[redis] {message}", file=sys.stderr, flush=True)


def ensure_installed(timeout: float = 900.0) -> Path:
    """The ``redis-server`` binary; installs Debian's package first when it is missing and we are root."""
    found = shutil.which(PACKAGE)
    if found:
        return Path(found)
    if os.geteuid() != 0:
        raise StackError(f"{PACKAGE} is not installed; as root run: apt-get install -y {PACKAGE}")
    _say(f"installing the Debian package {PACKAGE}")
    env = {**os.environ, **_APT_ENV}
    install = ["apt-get", *_APT_LOCK_WAIT, "install", "-y", "--no-install-recommends", PACKAGE]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        update = ["apt-get", *_APT_LOCK_WAIT, "update"]
        subprocess.run(update, env=env, capture_output=True, timeout=timeout, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    found = shutil.which(PACKAGE)
    if result.returncode != 0 or not found:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(f"apt-get could not install {PACKAGE} (status {result.returncode}):\n{tail}")
    return Path(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` on 127.0.0.1, no persistence, its log in its own work directory."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="otelor-redis-"))
        self.log_path = self.workdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL for Celery (``redis://127.0.0.1:<port>/0``)."""
        return f"redis://{_LOOPBACK}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Launch the server (installing the package first if needed); see :meth:`wait_ready`."""
        if self.running:
            raise StackError("this Redis is already running")
        command = [
            str(ensure_installed()),
            "--port", str(self.port),
            "--bind", _LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # our Ctrl-C does not reach it; we stop it ourselves
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server answers ``PING``; raise :class:`StackError` with its log if it does not."""
        deadline = time.monotonic() + timeout
        while not self._pong():
            if self._process is None or self._process.poll() is not None:
                raise StackError(f"redis-server exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise StackError(f"redis-server did not answer PING within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server (SIGKILL after ``timeout``) and wait for it to exit."""
        if not self.running or self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(30)

    def remove(self) -> None:
        """Stop the server and delete its work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.is_file():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(no output)"

    def _pong(self) -> bool:
        try:
            with socket.create_connection((_LOOPBACK, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self.running else 'stopped'} {self.workdir}>"
