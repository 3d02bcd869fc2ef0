"""The README's main command works: the demo finds the sample session's records with both OpenReplay reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_demo_shows_what_openreplay_will_find() -> None:
    """scripts/demo.py exits 0 and the doctor reports both records for both OpenReplay generations."""
    result = subprocess.run(
        [sys.executable, "scripts/demo.py"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("the replay shows 2 records") == 2
    assert "GET /crash -> " in result.stdout  # 500, or from the browser: a 500 without CORS header (FastAPI)
    assert "Traceback (most recent call last)" in result.stdout
