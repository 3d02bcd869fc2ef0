"""The test stack's cache root and the file lock that serialises work in it across processes.

Everything the stack downloads or builds (Elasticsearch, the browser tracker, the collector via
collector/build.sh) lives under ``$OTEL_OPENREPLAY_CACHE``, default ``~/.cache/otel-openreplay``; concurrent
test sessions take :func:`locked` around filling it.

What it must never do: delete anything, or lock anything outside the cache. It is test tooling: nothing
under ``otel_openreplay`` may import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "OTEL_OPENREPLAY_CACHE"
"""Environment variable naming the cache root; the default is ``~/.cache/otel-openreplay``."""


def root() -> Path:
    """The cache root (not created here)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "otel-openreplay")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its directory, if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
