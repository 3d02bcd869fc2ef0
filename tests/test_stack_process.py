"""The test stack's process helper (tests/stack/process.py), with real short-lived processes (no servers)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.stack.process import ServiceProcess


class StartError(RuntimeError):
    pass


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class TestServiceProcess:
    def test_exit_before_ready_raises_with_the_log_tail(self, tmp_path: Path) -> None:
        """A process that dies while being waited for raises the caller's error, with its status and last output."""
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        proc.start(python("print('bad setting: no.such'); raise SystemExit(3)"), env=os.environ, cwd=tmp_path)
        with pytest.raises(StartError, match=r"(?s)toy exited with status 3; last log lines:\n.*bad setting: no\.such"):
            proc.wait_ready(lambda: False, 30, StartError, interval=0.05)

    def test_timeout_raises(self, tmp_path: Path) -> None:
        """A process that never becomes ready raises after the timeout, and stop() ends it."""
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        proc.start(python("import time; time.sleep(60)"), env=os.environ, cwd=tmp_path)
        try:
            with pytest.raises(StartError, match="toy not ready after 0 s"):
                proc.wait_ready(lambda: False, 0.2, StartError, interval=0.05)
        finally:
            proc.stop(5)
        assert not proc.running

    def test_stop_reaches_the_children_and_runs_keep_one_log(self, tmp_path: Path) -> None:
        """stop() ends the whole process group (a launcher's child too); a restart appends to the same log."""
        child_pid = tmp_path / "child.pid"
        launcher = (
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
            "print('run', flush=True)\n"
            "time.sleep(60)\n"
        )
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        for banner in ("=== first", "=== second"):
            proc.start(python(launcher), env=os.environ, cwd=tmp_path, banner=banner)
            proc.wait_ready(
                lambda: child_pid.is_file() and "run" in proc.log_text(current_run_only=True), 30, StartError
            )
            child = int(child_pid.read_text())
            proc.stop(10, extra_pids=[child])
            assert not proc.running
            assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
            child_pid.unlink()
        log = proc.log_text()
        assert log.index("=== first") < log.index("=== second")
        assert proc.log_text(current_run_only=True).startswith("=== second")
        assert proc.log_tail(1) == "run"

    def test_kill_is_immediate(self, tmp_path: Path) -> None:
        """kill() does not wait for a graceful exit: a process ignoring SIGTERM is gone at once."""
        code = (
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n"
        )
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        proc.start(python(code), env=os.environ, cwd=tmp_path)
        proc.wait_ready(lambda: "up" in proc.log_text(), 30, StartError, interval=0.05)
        started = time.monotonic()
        proc.kill()
        assert not proc.running
        assert time.monotonic() - started < 5

    def test_stop_after_the_leader_exited_still_ends_its_children(self, tmp_path: Path) -> None:
        """A leader that exits leaving children (a prefork master that died, a daemonising launcher): stop()
        still signals the group, and waits for the extra pids it was given."""
        child_pid = tmp_path / "child.pid"
        launcher = (
            "import subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        )
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        proc.start(python(launcher), env=os.environ, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while proc.running and time.monotonic() < deadline:  # the leader writes the pid file, then exits
            time.sleep(0.05)
        child = int(child_pid.read_text())
        assert Path(f"/proc/{child}").exists()  # orphaned, still in the group
        proc.stop(10, extra_pids=[child])
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]

    def test_stop_leader_only_spares_the_children_until_the_leader_is_gone(self, tmp_path: Path) -> None:
        """leader_only: SIGTERM reaches the leader alone (a child ignoring nothing still runs while the leader
        shuts down); whatever is left of the group afterwards is killed."""
        child_pid = tmp_path / "child.pid"
        launcher = (
            "import signal, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
            "def bye(*_):\n"
            "    print('child alive at shutdown:', child.poll() is None, flush=True)\n"
            "    raise SystemExit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n"
        )
        proc = ServiceProcess("toy", tmp_path / "toy.log")
        proc.start(python(launcher), env=os.environ, cwd=tmp_path)
        proc.wait_ready(lambda: "up" in proc.log_text(), 30, StartError, interval=0.05)
        child = int(child_pid.read_text())
        proc.stop(10, extra_pids=[child], leader_only=True)
        assert "child alive at shutdown: True" in proc.log_text()
        assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
