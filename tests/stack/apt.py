"""Debian packages the test stack needs (Redis, Chromium, npm), installed with ``apt-get`` when missing.

:func:`install` runs ``apt-get install -y --no-install-recommends`` as root, with one ``apt-get update`` and
a second try when the first fails (a fresh machine may have no package lists yet), one install at a time
(a lock in the project's cache, and dpkg's own lock waited for).

What it must never do: run without root (it raises :class:`AptUnavailable` saying what to install), start or
configure a service, or remove anything. It is test tooling: nothing under ``otel_openreplay`` may import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

from tests.stack import cache

_LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")  # other jobs may hold dpkg's lock for a while


class AptUnavailable(RuntimeError):
    """The packages are missing and cannot be installed here; the message says why and what to run."""


def install(packages: Sequence[str], why: str, *, timeout: float = 900.0) -> None:
    """Install Debian ``packages`` because ``why`` (e.g. "redis-server is not installed")."""
    wanted = " ".join(packages)
    if os.geteuid() != 0:
        raise AptUnavailable(f"{why}; as root run: apt-get install -y {wanted}")
    if shutil.which("apt-get") is None:
        raise AptUnavailable(f"{why}, and this machine has no apt-get to install {wanted}")
    command = ["apt-get", *_LOCK_WAIT, "install", "-y", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"[apt] {why}: {' '.join(command)}", file=sys.stderr, flush=True)
    with cache.locked(cache.root() / ".apt.lock"):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            update = ["apt-get", *_LOCK_WAIT, "update"]
            subprocess.run(update, env=env, capture_output=True, timeout=timeout, check=False)
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
        raise AptUnavailable(f"{why}, and `{' '.join(command)}` failed (status {result.returncode}):\n{tail}")
