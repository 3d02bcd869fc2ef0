"""The README's Python snippets run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_manual_setup_snippet_runs_and_puts_the_processor_first() -> None:
    """The `configure()` snippet, run as is, wires our processor ahead of the batch processor."""
    (manual,) = [block for block in python_blocks() if "otel_openreplay.configure()" in block]
    check = (
        "\nfirst = provider._multi_log_record_processor._log_record_processors[0]\n"
        "assert type(first).__name__ == 'OpenReplayLogProcessor', first\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", manual + check], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_session_snippet_runs() -> None:
    """The `session()` snippet, with a job and a function to run, tags what is logged inside."""
    (jobs,) = [block for block in python_blocks() if "otel_openreplay.session(token=job" in block]
    prelude = (
        "import logging, types, otel_openreplay\n"
        "job = types.SimpleNamespace(openreplay_token='1bq7y3xsc6hdc.0.1dj3n1ak.sig')\n"
        "def process(job):\n"
        "    assert otel_openreplay.current_session().id == str(int('1bq7y3xsc6hdc', 36))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + jobs], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
