"""One way to run a service process for the test stack: start it, wait until it is ready, read its log, stop it.

:class:`ServiceProcess` is what :mod:`tests.stack.es` (an Elasticsearch node) and
:mod:`tests.stack.collector` (the collector) share: the process runs in its own session (so our
Ctrl-C does not reach it, and stopping reaches every process it started), its stdout and stderr go to
one log file that survives restarts (each run's output is appended), readiness is a caller's check
polled until it holds, and every failure message ends with the log's tail.

What it must never do: signal a process group it did not create, or a pid it was not given; read more
than the end of a large log into memory for a tail; raise anything but the caller's error type for a
process that exits or is not ready in time. It is test tooling: nothing under ``otel_openreplay`` may
import it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

LOOPBACK = "127.0.0.1"
_TAIL_BYTES = 64_000  # enough for the last 40 lines of any log line length seen here


class StackError(RuntimeError):
    """Something in the test stack could not be prepared or run; the message says what and usually why."""


_Managed = TypeVar("_Managed", bound="ManagedService")


class ManagedService:
    """A service used as ``with Service(...) as running:``: started and ready inside, removed after.

    Subclasses give ``start()``, ``wait_ready()`` (its defaults) and ``remove()``; a start that fails
    removes what it made before the error goes on.
    """

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> object:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Managed) -> _Managed:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.remove()


# Builds the caller's exception from a sentence ("exited with status 1; last log lines: …").
ErrorFactory = Callable[[str], Exception]


@dataclass(frozen=True)
class Account:
    """The unprivileged user a root process runs a service as (Elasticsearch refuses root)."""

    name: str
    uid: int
    gid: int


def new_password() -> str:
    """A random password that never starts with ``-`` (a command line would read ``--password -x…`` as a flag)."""
    return "p" + secrets.token_urlsafe(18)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (another process may still take one)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


class ServiceProcess:
    """One service process at a time (restartable), logging to ``log_path``.

    ``name`` appears in error messages. The process leads its own process group; :meth:`stop` and
    :meth:`kill` signal that group and wait for the leader and any ``extra_pids`` the caller names (a
    launcher's child that writes a pid file, say) to be gone.
    """

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts in the log file
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        """PID of the process started last (the group leader), or None before the first start."""
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """True while the process started last has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        account: Account | None = None,
        banner: str | None = None,
        stdout: Path | None = None,
    ) -> None:
        """Launch ``command`` (no waiting); its output is appended to the log after an optional ``banner`` line.

        ``stdout``: a separate file (appended to) for standard output, when a caller parses it; the log
        then holds standard error only.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log, contextlib.ExitStack() as files:
            self._log_offset = log.tell()
            if banner:
                log.write(f"{banner}\n".encode())
                log.flush()
            out = files.enter_context(stdout.open("ab")) if stdout is not None else log
            self._process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log if stdout is not None else subprocess.STDOUT,
                start_new_session=True,  # its own process group: our signals stay ours, stop reaches its children
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
            )
        self.started_at = time.monotonic()

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, error: ErrorFactory, *, interval: float = 0.25
    ) -> float:
        """Poll ``ready()`` until true; return the seconds since start.

        Raises ``error("… exited with status N; last log lines: …")`` if the process exits first, or
        ``error("… not ready after T s; …")`` when ``timeout`` passes.
        """
        process = self._require(error)
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise error(self.failure(f"exited with status {process.returncode}"))
            if time.monotonic() > deadline:
                raise error(self.failure(f"not ready after {timeout:.0f} s"))
            time.sleep(interval)
        return time.monotonic() - self.started_at

    def failure(self, what: str) -> str:
        """``<name> <what>; last log lines:`` and the tail, for an error message."""
        return f"{self.name} {what}; last log lines:\n{self.log_tail()}"

    def stop(self, timeout: float, *, extra_pids: Sequence[int] = (), leader_only: bool = False) -> None:
        """SIGTERM the group, SIGKILL it after ``timeout``; return once the leader and ``extra_pids`` are gone.

        ``leader_only``: SIGTERM goes to the leader alone, for a server whose children must not get it (a
        Celery prefork pool finishing its tasks in a warm shutdown); whatever of the group outlives the
        leader (or ``timeout``) gets SIGKILL.
        """
        process = self._process
        if leader_only and process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
            self._end(signal.SIGKILL, 30.0, extra_pids)
            return
        self._end(signal.SIGTERM, timeout, extra_pids)

    def kill(self, *, extra_pids: Sequence[int] = ()) -> None:
        """SIGKILL the group at once, as a crash or OOM kill would."""
        self._end(signal.SIGKILL, 30.0, extra_pids)

    def log_text(self, *, current_run_only: bool = False) -> str:
        """Everything the process printed (all runs, or only the current one)."""
        if not self.log_path.is_file():
            return ""
        with self.log_path.open("rb") as log:
            if current_run_only:
                log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log (reads only its end)."""
        if not self.log_path.is_file():
            return "(no output yet)"
        with self.log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _TAIL_BYTES))
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def _require(self, error: ErrorFactory) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise error(f"{self.name} was never started")
        return self._process

    def _end(self, signum: signal.Signals, timeout: float, extra_pids: Sequence[int]) -> None:
        process = self._process
        if process is None:
            return
        # Always the group, even when the leader has exited: children it left behind (a prefork worker, a
        # launcher's daemon) are still in it. ESRCH (an empty group) is ignored. Then wait for the leader
        # and the extra pids alike.
        terminate_process_group(process.pid, [process.pid, *extra_pids], timeout=timeout, first=signum)
        process.wait()


def terminate_process_group(
    leader: int, pids: Sequence[int], *, timeout: float = 60.0, first: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``first`` (SIGTERM) to the group ``leader`` leads, SIGKILL after ``timeout``; return once ``pids`` are gone.

    Only for groups the stack created (each service process leads its own session). The group is
    signalled whether or not its leader still runs (a group outlives its leader while members remain).
    """
    _signal_group(leader, first)
    if not _wait_gone(pids, timeout):
        _signal_group(leader, signal.SIGKILL)
        _wait_gone(pids, 30.0)
    elif first != signal.SIGKILL:
        _signal_group(leader, signal.SIGKILL)  # members outside ``pids`` that ignored ``first``


def _signal_group(leader: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # ESRCH: nobody left in the group
        os.killpg(leader, signum)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
