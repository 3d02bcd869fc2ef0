"""The test matrix: every supported Python and OpenTelemetry release, one nox session per cell.

``scripts/test`` (no arguments) runs all of it; ``.venv/bin/nox -l`` lists the cells and
``.venv/bin/nox -s tests-3.12`` runs one. Cells:

- ``tests-3.10`` … ``tests-3.13``: the unit suite, then one end-to-end smoke (an example app under
  ``opentelemetry-instrument`` → the real collector → real Elasticsearch → OpenReplay's own reads), on
  each interpreter with the tested OpenTelemetry set (the ``dev`` extra).
- ``otel-floor``: the unit suite on the oldest release pyproject.toml allows (SDK 1.39.1, contrib 0.60b1;
  the logs SDK changed shape in 1.39 and 1.44, so the floor is tested, not assumed), on the oldest Python.
- ``otel-newest``: the unit suite with the newest API/SDK the base ranges allow (1.45.2) and nothing
  pinned but that, on the newest Python.
- ``celery-floor``: the oldest Celery pyproject.toml allows (5.3.0, with the oldest Kombu, billiard, vine
  and redis-py it allows): the Celery unit tests and the Celery end-to-end core (each pool, beat).
- ``main``: the whole suite (unit, end to end, faults) in ``.venv``, the tested set (SDK 1.45.1 / 0.66b1).

A missing interpreter fails its cell with "Python interpreter 3.x not found": never a silent pass. nox
creates the venvs with uv (Rust resolver and a shared wheel cache: a cold venv of the ``dev`` extra takes
seconds, pip takes minutes); venvs and uv's cache live in ``$OTEL_OPENREPLAY_CACHE`` (default
``~/.cache/otel-openreplay``), one venv directory per checkout.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("OTEL_OPENREPLAY_CACHE", Path.home() / ".cache" / "otel-openreplay"))
os.environ.setdefault("UV_CACHE_DIR", str(CACHE / "uv"))
# pyenv's interpreters, found even when its shims do not expose them (`pyenv global` names one version):
# appended to PATH, so never ahead of the user's own.
os.environ["PATH"] = os.pathsep.join(
    [
        os.environ.get("PATH", ""),
        *map(str, sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.*/bin"))),
    ]
)

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""Every supported interpreter (pyproject.toml: requires-python >= 3.10)."""

FLOOR = {"sdk": "1.39.1", "contrib": "0.60b1"}
"""The oldest OpenTelemetry release the base dependencies allow."""

NEWEST_SDK = "1.45.2"
"""The newest API/SDK on the index; the extras pin 1.45.1 (the contrib set), the base ranges allow this."""

TESTED_SDK = "1.45.1"
"""The tested set, pinned by the extras (0.66b1 contrib)."""

SMOKE = [
    "tests/test_pipeline_e2e.py",
    "-k",
    "TestPipeline and test_handler_error_reaches_both_openreplay_reads and (flask or fastapi)",
]
"""One end-to-end test per interpreter: Flask (OTLP/gRPC) and FastAPI (OTLP/HTTP) → collector →
Elasticsearch → both OpenReplay reads. The other e2e suites run once, in ``main``."""

UNIT = ["-q", "-p", "no:cacheprovider", "-m", "not e2e"]

CELERY_FLOOR = {"celery[redis]": "5.3.0", "kombu": "5.3.0", "billiard": "4.1.0", "vine": "5.0.0", "redis": "4.5.2"}
"""Celery's floor (pyproject.toml: celery>=5.3) with the oldest Kombu, billiard and vine it allows and the oldest
redis-py Kombu's redis extra allows."""

CELERY_FLOOR_TESTS = {
    "unit": ["tests/test_celery_logging.py", "tests/test_celery_gevent.py", "tests/test_celery_beat.py"],
    "e2e": ["tests/test_celery_e2e.py", "-k", "test_task_error_and_failure_reach or test_beat_sent_retry"],
}
"""On the floor: every Celery unit test; end to end, a web request's session in the worker's records for each
pool (solo, prefork, threads, gevent) and a beat-sent task (beat alone and ``worker -B``)."""

_CELERY_PROBE = """
import sys
from importlib.metadata import version
found = {name: version(name) for name in ("celery", "kombu", "billiard", "vine", "redis")}
print(", ".join(f"{name} {v}" for name, v in found.items()))
sys.exit(0 if found["celery"] == sys.argv[1] else f"the resolver took Celery {found['celery']}, not {sys.argv[1]}")
"""

nox.options.default_venv_backend = "uv"
nox.options.download_python = "never"  # a missing interpreter is an error, not a download
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes"  # the install steps still run: a changed pyproject.toml is picked up
nox.options.envdir = str(CACHE / "nox" / hashlib.sha256(str(ROOT).encode()).hexdigest()[:12])


_PROBE = """
import sys
from importlib.metadata import version
sdk = version("opentelemetry-sdk")
print(f"Python {sys.version.split()[0]}, OpenTelemetry SDK {sdk}, contrib {version('opentelemetry-instrumentation')}")
sys.exit(0 if sdk == sys.argv[1] else f"the resolver took SDK {sdk}, not {sys.argv[1]}: this cell tests the wrong set")
"""


def _say_versions(session: nox.Session, expect_sdk: str) -> None:
    """Print the cell's Python and OpenTelemetry; fail if the resolver picked another SDK than the cell's."""
    session.run("python", "-c", _PROBE, expect_sdk, silent=False)


@nox.session(name="tests", python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Unit suite and the end-to-end smoke on one interpreter, with the tested OpenTelemetry set."""
    session.install("-e", ".[dev]")
    _say_versions(session, TESTED_SDK)
    session.run("pytest", *UNIT, *session.posargs)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e", *SMOKE)


@nox.session(name="otel-floor", python=PYTHONS[0])
def otel_floor(session: nox.Session) -> None:
    """Unit suite on the oldest OpenTelemetry release the base dependencies allow."""
    sdk, contrib = FLOOR["sdk"], FLOOR["contrib"]
    session.install(
        "-e",
        ".[test]",
        f"opentelemetry-api=={sdk}",
        f"opentelemetry-sdk=={sdk}",
        f"opentelemetry-exporter-otlp=={sdk}",
        f"opentelemetry-instrumentation=={contrib}",
        f"opentelemetry-instrumentation-logging=={contrib}",
        f"opentelemetry-processor-baggage=={contrib}",
        # The WSGI and ASGI getters: the propagator's single-pass reads are tested against them.
        f"opentelemetry-instrumentation-asgi=={contrib}",
        f"opentelemetry-instrumentation-wsgi=={contrib}",
    )
    _say_versions(session, sdk)
    # contrib's structlog instrumentation has no release for 0.60b1: its tests in test_structlog_records.py
    # skip here (with that reason) and run in every other cell.
    # The README's snippets are for the recommended set (they use instrumentation-logging >= 0.61's handler).
    session.run("pytest", *UNIT, "--ignore=tests/test_readme.py", *session.posargs)


@nox.session(name="otel-newest", python=PYTHONS[-1])
def otel_newest(session: nox.Session) -> None:
    """Unit suite with the newest API/SDK and whatever contrib the resolver takes with it."""
    session.install(
        "-e",
        ".[test]",
        f"opentelemetry-api=={NEWEST_SDK}",
        f"opentelemetry-sdk=={NEWEST_SDK}",
        "opentelemetry-instrumentation-logging",
        "opentelemetry-processor-baggage",
        "opentelemetry-instrumentation-asgi",
        "opentelemetry-instrumentation-wsgi",
        # Not opentelemetry-instrumentation-structlog: its only release (0.66b1) pins the semantic conventions
        # 0.66b1 and SDK 1.45.2 needs 0.66b2, so the two cannot be installed together; its tests skip here
        # (with that reason) and run in the tested set.
    )
    _say_versions(session, NEWEST_SDK)
    session.run("pytest", *UNIT, *session.posargs)


@nox.session(name="celery-floor", python="3.11")  # Celery 5.3.0 predates Python 3.12
def celery_floor(session: nox.Session) -> None:
    """The Celery unit tests and the Celery end-to-end core on the oldest Celery the package allows."""
    session.install("-e", ".[dev]", *(f"{name}=={version}" for name, version in CELERY_FLOOR.items()))
    _say_versions(session, TESTED_SDK)
    session.run("python", "-c", _CELERY_PROBE, CELERY_FLOOR["celery[redis]"], silent=False)
    session.run("pytest", *UNIT, *CELERY_FLOOR_TESTS["unit"], *session.posargs)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e", *CELERY_FLOOR_TESTS["e2e"])


@nox.session(name="main", python=False)
def main(session: nox.Session) -> None:
    """The whole suite in .venv (scripts/bootstrap): unit, end to end and faults, on the tested set."""
    session.run(str(ROOT / "scripts" / "bootstrap"), external=True)
    session.run(str(ROOT / ".venv" / "bin" / "pytest"), *session.posargs, external=True)
