"""The README's Python snippets run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_openreplay.exit_codes import ES_CHECK_CODES, ExitCode

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize(
    ("marker", "prelude", "check"),
    [
        pytest.param(
            "otel_openreplay.configure()",
            "",
            "first = provider._multi_log_record_processor._log_record_processors[0]\n"
            "assert type(first).__name__ == 'OpenReplayLogProcessor', first\n",
            id="configure-puts-the-processor-ahead-of-the-batch-processor",
        ),
        pytest.param(
            "otel_openreplay.session(token=job",
            "import logging, types, otel_openreplay\n"
            "job = types.SimpleNamespace(openreplay_token='1bq7y3xsc6hdc.0.1dj3n1ak.sig')\n"
            "ran = []\n"
            "def process(job):\n"
            "    assert otel_openreplay.current_session().id == str(int('1bq7y3xsc6hdc', 36))\n"
            "    ran.append(job)\n",
            "assert ran == [job], ran\n",
            id="session-makes-the-job-token-current",
        ),
    ],
)
def test_snippet_runs_as_written(marker: str, prelude: str, check: str) -> None:
    """The one README snippet containing ``marker``, unchanged between a prelude that gives it what it names
    and a check of what it must have done, runs to the end in a fresh interpreter."""
    (snippet,) = [block for block in python_blocks() if marker in block]
    script = f"{prelude}{snippet}\n{check}print('ok')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_exit_codes_line_is_the_commands_table() -> None:
    """The README's "Exit codes" line says exactly what `es check --help` says, and names every code 0-6."""
    text = " ".join(README.read_text().split()).replace("`", "")
    assert f"Exit codes: {ES_CHECK_CODES}." in text
    numbers = {int(number) for number in re.findall(r"(?:^|, )(\d) ", ES_CHECK_CODES)}
    assert numbers == {code.value for code in ExitCode if code is not ExitCode.INTERRUPTED}
