"""OpenReplayInstrumentor: loaded by opentelemetry-instrument with no other setting; undone by uninstrument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider

from otel_openreplay.instrumentor import OpenReplayInstrumentor
from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.propagator import OpenReplayPropagator
from tests.conftest import LogPipeline

ROOT = Path(__file__).resolve().parents[1]


class TestOpenReplayInstrumentor:
    def test_instrument_and_uninstrument(self, pipeline: LogPipeline) -> None:
        """instrument() adds the propagator (keeping the others) and the processor first; uninstrument undoes it."""
        before = propagate.get_global_textmap()
        instrumentor = OpenReplayInstrumentor()
        instrumentor.instrument(logger_provider=pipeline.provider, tracer_provider=TracerProvider())
        try:
            textmap = propagate.get_global_textmap()
            assert isinstance(textmap, CompositePropagator)
            assert isinstance(textmap._propagators[-1], OpenReplayPropagator)
            assert before in textmap._propagators or textmap._propagators[:-1] == list(before._propagators)
            processors = pipeline.provider._multi_log_record_processor._log_record_processors
            assert isinstance(processors[0], OpenReplayLogProcessor)
        finally:
            instrumentor.uninstrument()
        assert propagate.get_global_textmap() is before
        processors = pipeline.provider._multi_log_record_processor._log_record_processors
        assert not any(isinstance(p, OpenReplayLogProcessor) for p in processors)

    def test_bad_setting_logs_and_instruments_nothing(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad variable never stops the app: an ERROR names it and nothing is changed."""
        monkeypatch.setenv("OTEL_OPENREPLAY_PREFIX", "everything")
        before = propagate.get_global_textmap()
        instrumentor = OpenReplayInstrumentor()
        instrumentor.instrument()
        try:
            assert "OTEL_OPENREPLAY_PREFIX='everything'" in caplog.text
            assert propagate.get_global_textmap() is before
        finally:
            instrumentor.uninstrument()

    @pytest.mark.e2e
    def test_no_configurator_and_a_provider_set_later(self) -> None:
        """Without opentelemetry-distro's configurator, a provider the app sets later is wired first."""
        env = {
            **os.environ,
            "OTEL_PYTHON_CONFIGURATOR": "none-here",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        }
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "opentelemetry-instrument"),
                sys.executable,
                "tests/scripts/late_provider.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out == {
            "bodies": ["[openReplaySession.id=4] late provider"],
            "first": "OpenReplayLogProcessor",
        }

    def test_entry_point(self) -> None:
        """opentelemetry-instrument finds the instrumentor under the name `openreplay`."""
        from opentelemetry.util._importlib_metadata import entry_points

        (found,) = entry_points(group="opentelemetry_instrumentor", name="openreplay")
        assert found.load() is OpenReplayInstrumentor
