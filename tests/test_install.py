"""The README's install recipe: each extra resolves, from the package index, to a consistent, working set.

Each test builds a fresh virtual environment and runs ``pip install "otel-openreplay[<extra>]"`` from
this checkout, as a new user would from the index; ``pip check`` must find nothing broken and
``opentelemetry-instrument`` must find our instrumentor and the framework's.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]

EXTRA_INSTRUMENTORS = {
    "flask": {"flask"},
    "fastapi": {"fastapi"},
    "django": {"django"},
    "django-asgi": {"django"},
    "aiohttp": {"aiohttp-server"},
    "falcon": {"falcon"},
    "tornado": {"tornado"},
    "pyramid": {"pyramid"},
    "starlette": {"starlette"},
    "celery": {"celery"},
    # the logging libraries' extras, next to a framework's as the README installs them
    "flask,loguru": {"flask"},
    "flask,structlog": {"flask", "structlog"},
}
"""Each extra (as the README installs it) and the instrumentors it must bring besides ours, logging's, threading's."""


@pytest.mark.parametrize("extra", list(EXTRA_INSTRUMENTORS))
def test_extra_installs_a_consistent_set(extra: str, tmp_path: Path) -> None:
    """`pip install "otel-openreplay[<extra>]"` in a fresh venv: no conflict, instrumentors loadable."""
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{ROOT}[{extra}]"], check=True, capture_output=True, timeout=900
    )
    checked = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout
    probe = (
        "from opentelemetry.util._importlib_metadata import entry_points\n"
        "names = {ep.name for ep in entry_points(group='opentelemetry_instrumentor')}\n"
        "print(' '.join(sorted(names)))\n"
        "[ep.load() for ep in entry_points(group='opentelemetry_instrumentor')]\n"
    )
    loaded = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    names = set(loaded.stdout.split())
    assert {"openreplay", "logging", "threading", *EXTRA_INSTRUMENTORS[extra]} <= names
