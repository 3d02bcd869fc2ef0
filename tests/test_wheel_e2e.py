"""The wheel and the sdist as a pip-only user gets them, and the README's commands run from the wheel alone.

``python -m build`` in a clean venv makes the sdist and, from the sdist, the wheel (so a file missing
from the sdist is missing from the wheel too). Their metadata and contents are checked; then the wheel
goes into a fresh venv, and everything runs from a directory with no repository around it:
``otel-openreplay collector config`` writes the collector config, which runs in the real collector binary
against real Elasticsearch, and the README's zero-code command (the Flask example under
``opentelemetry-instrument``, copied next to nothing else) puts a session's error where OpenReplay's
two reads find it.

The venvs are made with uv (seconds; pip takes minutes): the wheel is the same, and the README's
``pip install`` of the extras is tested by tests/test_install.py.
"""

from __future__ import annotations

import configparser
import email.parser
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from elasticsearch import Elasticsearch
from packaging.requirements import Requirement

from otel_openreplay.doctor import current_request, legacy_request
from tests.flakeid import token_for
from tests.stack import collector as collector_stack
from tests.stack.fixtures import Accounts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # build, two venvs, Elasticsearch, the collector: minutes

ROOT = Path(__file__).resolve().parents[1]
VERSION = metadata.version("otel-openreplay")
COLLECTOR_FILES = {"otelcol-openreplay.yaml": "config", "builder-config.yaml": "manifest"}
ENTRY_POINTS = {
    ("console_scripts", "otel-openreplay", "otel_openreplay.cli:main"),
    ("opentelemetry_propagator", "openreplay", "otel_openreplay.propagator:OpenReplayPropagator"),
    ("opentelemetry_instrumentor", "openreplay", "otel_openreplay.instrumentor:OpenReplayInstrumentor"),
    ("opentelemetry_environment_variables", "otel_openreplay", "otel_openreplay.settings"),
    ("opentelemetry_logs_exporter", "openreplay_elasticsearch", "otel_openreplay.exporter:ElasticsearchLogExporter"),
}


SESSION_ID = str(7_000_000_000_000_000 + secrets.randbelow(10**15))  # its own, in a node other tests share
TOKEN = token_for(SESSION_ID)  # OpenReplay's shape: base36(id) first


class Dists(NamedTuple):
    wheel: Path
    sdist: Path


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _venv(path: Path, *packages: str | Path) -> Path:
    """A fresh venv at ``path`` with ``packages``; its bin directory."""
    from uv import find_uv_bin  # the dev extra's; here so that the unit-only matrix cells collect this module

    uv = find_uv_bin()
    _run(uv, "venv", "--quiet", "--python", sys.executable, path, cwd=path.parent)
    _run(uv, "pip", "install", "--quiet", "--python", path / "bin" / "python", *packages, cwd=path.parent)
    return path / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell with none of this checkout in it."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OTEL_", "OPENREPLAY_"))}
    return {**keep, **extra}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """``python -m build`` of a clean copy of the checkout, in a clean venv: the sdist, and the wheel built from it."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    tracked = _run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, tracked):  # what a clone holds: no .venv, no egg-info, no build/
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    bin_ = _venv(work / "venv", "build[uv]>=1.2")
    _run(bin_ / "python", "-m", "build", "--installer", "uv", "--outdir", work / "dist", source, cwd=work, timeout=900)
    (wheel,) = (work / "dist").glob("*.whl")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    return Dists(wheel, sdist)


def _headers(text: str) -> Any:
    return email.parser.Parser().parsestr(text)


def _check_metadata(meta: Any) -> None:
    assert meta["Name"] == "otel-openreplay"
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    base = {str(Requirement(r)) for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert base == {str(Requirement(r)) for r in metadata.requires("otel-openreplay") if "extra ==" not in r}
    assert {"opentelemetry-api<2,>=1.39", "opentelemetry-sdk<2,>=1.39"} <= base
    assert {"flask", "fastapi", "django", "test", "dev"} <= set(meta.get_all("Provides-Extra"))


class TestDistributions:
    def test_wheel_metadata_and_contents(self, dists: Dists) -> None:
        """The wheel: name, version, license (with its text), requirements, entry points, the collector's
        files byte for byte, py.typed; no tests, no build script."""
        with zipfile.ZipFile(dists.wheel) as wheel:
            names = set(wheel.namelist())
            info = f"otel_openreplay-{VERSION}.dist-info"
            _check_metadata(_headers(wheel.read(f"{info}/METADATA").decode()))
            assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
            groups = configparser.ConfigParser(delimiters="=")
            groups.optionxform = str  # type: ignore[assignment,method-assign]  # names are case-sensitive
            groups.read_string(wheel.read(f"{info}/entry_points.txt").decode())
            entry_points = {
                (group, name, value) for group in groups.sections() for name, value in groups[group].items()
            }
            assert entry_points == ENTRY_POINTS
            for name in COLLECTOR_FILES:
                assert wheel.read(f"otel_openreplay/_collector/{name}") == (ROOT / "collector" / name).read_bytes()
            assert "otel_openreplay/py.typed" in names
        assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/")) or n.endswith(".sh")]

    def test_sdist_metadata_and_contents(self, dists: Dists) -> None:
        """The sdist: the same metadata, the license, py.typed and collector/ as the repository lays it out."""
        with tarfile.open(dists.sdist) as sdist:
            top = f"otel_openreplay-{VERSION}"
            names = set(sdist.getnames())
            _check_metadata(_headers(sdist.extractfile(f"{top}/PKG-INFO").read().decode()))  # type: ignore[union-attr]
            for name in ["LICENSE", "pyproject.toml", "otel_openreplay/py.typed", "collector/__init__.py"]:
                assert f"{top}/{name}" in names
            for name in COLLECTOR_FILES:
                data = sdist.extractfile(f"{top}/collector/{name}").read()  # type: ignore[union-attr]
                assert data == (ROOT / "collector" / name).read_bytes()


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel with the Flask extra and gunicorn in a fresh venv; and an empty directory to run in."""
    home = tmp_path_factory.mktemp("pip-only-user")
    # What the README says the Flask example needs: the extra, a server, the CORS package it uses.
    bin_ = _venv(home / "venv", f"{dists.wheel}[flask]", "gunicorn", "flask-cors", "requests")
    where = _run(bin_ / "python", "-c", "import otel_openreplay; print(otel_openreplay.__file__)", cwd=home)
    assert Path(where.strip()).is_relative_to(home / "venv"), where
    return bin_, home


def test_readme_commands_from_the_wheel_alone(
    installed: tuple[Path, Path], collector_binary: Path, accounts: Accounts, reader: Elasticsearch
) -> None:
    """Only the wheel: its `collector config` runs in the real collector, the README's zero-code Flask command
    sends a session's error through it, and both OpenReplay reads find the record in Elasticsearch."""
    bin_, home = installed
    env = _clean_env()
    _run(bin_ / "otel-openreplay", "collector", "config", "-o", "otelcol-openreplay.yaml", cwd=home, env=env)
    _run(bin_ / "otel-openreplay", "collector", "manifest", "-o", "builder-config.yaml", cwd=home, env=env)
    for name in COLLECTOR_FILES:
        assert (home / name).read_bytes() == (ROOT / "collector" / name).read_bytes()
    shutil.copytree(ROOT / "examples", home / "examples", ignore=shutil.ignore_patterns("__pycache__"))

    with collector_stack.Collector(home / "otelcol-openreplay.yaml", accounts.basic_env(), binary=collector_binary) as (
        collector
    ):
        port = collector_stack.free_ports(1)[0]
        app_env = _clean_env(  # the README's zero-code command, pointed at this collector
            OTEL_SERVICE_NAME="wheel-shop",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.http_port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_BLRP_SCHEDULE_DELAY="200",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}",
        )
        command = ["opentelemetry-instrument", "gunicorn", "--bind", f"127.0.0.1:{port}", "examples.flask_app:app"]
        app = subprocess.Popen(command, cwd=home, env=app_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            answer = _get_when_up(f"http://127.0.0.1:{port}/checkout", {"X-OpenReplay-SessionToken": TOKEN}, app)
            assert answer.status_code == 402
            current = _wait_for_hits(reader, current_request(SESSION_ID))
        finally:
            app.terminate()
            output = app.communicate(timeout=30)[0].decode(errors="replace")
    assert len(current) == 1, output[-3000:]
    (document,) = current
    expected = (
        f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={SESSION_ID}] payment declined: card 4242 expired"
    )
    assert document["message"] == expected
    assert document["service"] == {"name": "wheel-shop"}
    legacy = _search(reader, legacy_request("logs", int(time.time() * 1000) - 600_000))
    assert expected in [doc["message"] for doc in legacy]


def _get_when_up(url: str, headers: dict[str, str], app: subprocess.Popen[bytes]) -> requests.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, headers=headers, timeout=10)
        except requests.ConnectionError:
            if app.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app did not start: {app.communicate()[0].decode()[-3000:]}") from None
            time.sleep(0.3)


def _search(reader: Elasticsearch, request: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    answer = reader.perform_request(
        request["method"], request["path"], params=request["params"], body=request["body"], headers=headers
    )
    return [hit["_source"] for hit in answer["hits"]["hits"]]


def _wait_for_hits(reader: Elasticsearch, request: dict[str, Any], timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not _search(reader, request) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)  # and nothing more arrives
    return _search(reader, request)
