"""Every supported Elasticsearch server, end to end: 8.19.21, the oldest 8.x (8.0.0) and 7.17.29.

Per server (one node per version, ``es_server``): ``es setup`` and ``es check`` through the CLI; both keys
where the server can make them (8.19.21 here: API keys from ``es api-key``), else users with the same role
descriptors (file realm); the shipped collector config and the Python exporter writing as the writer, with
nothing the collector accepted lost; OpenReplay's two reads (the doctor, as the reader). And what a server
refuses is said clearly: ``es api-key`` on 7.x over plain HTTP, the 9.x Python client on an 8.x server,
``include_source_on_error`` before 8.18.

The 9.x client runs in a subprocess whose ``PYTHONPATH`` puts ``elasticsearch`` 9.x (installed once with
``pip --target`` into the cache) before the dev venv's 8.x.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_openreplay import cli
from otel_openreplay.exporter import ElasticsearchLogExporter
from tests.stack import cache, es
from tests.stack import collector as collector_stack
from tests.stack.es import ElasticsearchNode
from tests.stack.fixtures import Accounts
from tests.test_pipeline_e2e import new_token

pytestmark = pytest.mark.e2e

RECORDS = 40
"""Error records per export path and server: more than one collector batch is not needed to lose them all."""

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def accounts(es_server: ElasticsearchNode) -> Accounts:
    """The writer and OpenReplay reader on this server, and `logs` set up (overrides the plugin's one)."""
    return Accounts(es_server)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def superuser(node: ElasticsearchNode) -> list[str]:
    return ["--url", node.url, "--user", node.user, "--password", node.password]


def send(provider_exporter: Any, service: str, token: str) -> None:
    """RECORDS error records (plus a warning that must not arrive) through ``provider_exporter``."""
    provider = LoggerProvider(resource=Resource({"service.name": service}), shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(provider_exporter, schedule_delay_millis=100))
    logger = provider.get_logger("tests.versions")
    for n in range(RECORDS):
        logger.emit(
            body=f"record {n:04d}",
            severity_text="ERROR",
            severity_number=SeverityNumber.ERROR,
            attributes={"openReplaySessionToken": token},
        )
    logger.emit(body="a warning", severity_text="WARN", severity_number=SeverityNumber.WARN)
    provider.shutdown()


def stored(admin: Elasticsearch, index: str, service: str, want: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The documents of ``service`` once ``want`` are there (or at ``timeout``), 2 s later for any extra."""
    deadline = time.monotonic() + timeout
    while True:
        admin.indices.refresh(index=index)
        hits = admin.search(index=index, query={"term": {"service.name": service}}, size=want + 10)["hits"]["hits"]
        if len(hits) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2)
    admin.indices.refresh(index=index)
    hits = admin.search(index=index, query={"term": {"service.name": service}}, size=want + 10)["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def check_both_reads(capsys: pytest.CaptureFixture[str], accounts: Accounts, token: str, count: int) -> None:
    """`es check --token` as OpenReplay's reader: both generations show ``count`` records."""
    user, password = accounts.reader
    code, out, err = run_cli(
        capsys,
        "es",
        "check",
        "--json",
        "--token",
        token,
        "--url",
        accounts.node.url,
        "--user",
        user,
        "--password",
        password,
    )
    assert code == 0, err or out
    generations = json.loads(out)["generations"]
    assert len(generations) == 2
    for generation in generations:
        assert generation["ok"], generation
        assert len(generation["shown"]) == count, generation["title"]


class TestServer:
    def test_setup_is_ready_and_idempotent(
        self, es_server: ElasticsearchNode, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`es setup` installs the template and index on this server, and a second run changes nothing."""
        for attempt in ("created", "exists"):
            code, out, err = run_cli(capsys, "es", "setup", "--index", "logs-setup", *superuser(es_server))
            assert code == 0, err
            assert f"Index logs-setup: {attempt}." in out
            assert "Ready: OpenReplay can read this index." in out

    def test_the_keys_or_their_users(
        self, es_server: ElasticsearchNode, accounts: Accounts, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """API keys where the server makes them; elsewhere the same role descriptors as users: the writer
        creates documents and cannot read, the reader reads and cannot write."""
        if es_server.api_keys:
            keys = {}
            for purpose in ("writer", "openreplay"):
                code, out, err = run_cli(capsys, "es", "api-key", "--for", purpose, "--json", *superuser(es_server))
                assert code == 0, err
                keys[purpose] = json.loads(out)["encoded"]
            writer = es.client(es_server, api_key=keys["writer"])
            reader = es.client(es_server, api_key=keys["openreplay"])
        else:
            writer = es.client(es_server, basic_auth=accounts.writer)
            reader = accounts.reader_client()
        from elasticsearch import AuthorizationException

        with contextlib.closing(writer), contextlib.closing(reader):
            writer.create(index="logs", id=f"keys-{time.time_ns()}", document={"message": "written"})
            with pytest.raises(AuthorizationException):
                writer.search(index="logs")
            reader.search(index="logs", size=1)
            with pytest.raises(AuthorizationException):
                reader.index(index="logs", document={"message": "forged"})

    @pytest.mark.parametrize("es_server", [es.LEGACY_7X], indirect=True)
    def test_api_key_refusal_is_explained(
        self, es_server: ElasticsearchNode, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """7.x over plain HTTP has API keys off: `es api-key` names the server version and the setting (exit 6)."""
        code, _, err = run_cli(capsys, "es", "api-key", "--for", "writer", *superuser(es_server))
        assert code == 6
        assert f"Elasticsearch {es_server.version} has API keys turned off" in err
        assert "xpack.security.authc.api_key.enabled: true" in err
        assert "TIP:" in err

    def test_collector_loses_nothing_and_both_reads_find_it(
        self,
        es_server: ElasticsearchNode,
        accounts: Accounts,
        collector_binary: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The shipped config, unchanged, as the writer: every accepted record is a document, once."""
        token, session_id = new_token()
        service = f"versions-collector-{time.time_ns()}"
        with collector_stack.Collector(collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary) as col:
            send(OTLPLogExporter(endpoint=col.http_logs_url), service, token)
            with contextlib.closing(es.client(es_server)) as admin:
                docs = stored(admin, "logs", service, RECORDS)
            log = col.log_text()
        assert sorted(d["message"] for d in docs) == [
            f"[openReplaySessionToken={token}] [openReplaySession.id={session_id}] record {n:04d}"
            for n in range(RECORDS)
        ], log[-3000:]
        check_both_reads(capsys, accounts, token, RECORDS)

    def test_python_exporter_and_both_reads(
        self, es_server: ElasticsearchNode, accounts: Accounts, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """ElasticsearchLogExporter (8.x client) as the writer: every record is a document, found by both reads."""
        token, _ = new_token()
        service = f"versions-direct-{time.time_ns()}"
        user, password = accounts.writer
        send(ElasticsearchLogExporter(es_server.url, user=user, password=password), service, token)
        with contextlib.closing(es.client(es_server)) as admin:
            docs = stored(admin, "logs", service, RECORDS)
        assert len(docs) == RECORDS
        check_both_reads(capsys, accounts, token, RECORDS)

    @pytest.mark.parametrize("es_server", [es.OLDEST_8X, es.LEGACY_7X], indirect=True)
    def test_include_source_on_error_needs_8_18(
        self, es_server: ElasticsearchNode, accounts: Accounts, collector_binary: Path
    ) -> None:
        """Why the config leaves it unset: servers before 8.18 refuse every bulk request that carries it
        (8.19 knows it: tests/test_faults.py checks the reasons it adds)."""
        env = {**accounts.basic_env(), "OPENREPLAY_ES_INCLUDE_SOURCE_ON_ERROR": "false"}
        with collector_stack.Collector(collector_stack.CONFIG, env, binary=collector_binary) as col:
            send(OTLPLogExporter(endpoint=col.http_logs_url), f"versions-refused-{time.time_ns()}", new_token()[0])
            deadline = time.monotonic() + 30
            while "unrecognized parameter" not in col.log_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "include_source_on_error" in col.log_text()
            assert "unrecognized parameter" in col.log_text()


# --- the 9.x Python client ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def es9_client_path() -> Path:
    """A directory holding ``elasticsearch`` 9.x and its dependencies (``pip --target``, cached)."""
    target = cache.root() / "python-clients" / "elasticsearch-9"
    if not (target / ".complete").is_file():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--upgrade",
                "--target",
                str(target),
                "elasticsearch>=9,<10",
            ],
            check=True,
        )
        (target / ".complete").write_text("ok\n")
    return target


def run_with_client_9(es9_client_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(es9_client_path), str(REPO)])}
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120, check=False)


_DIRECT_9 = """
import sys, elasticsearch
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from otel_openreplay.exporter import ElasticsearchLogExporter
assert elasticsearch.__versionstr__.startswith("9."), elasticsearch.__versionstr__
url, user, password, service = sys.argv[1:]
provider = LoggerProvider(resource=Resource({"service.name": service}), shutdown_on_exit=False)
provider.add_log_record_processor(BatchLogRecordProcessor(ElasticsearchLogExporter(url, user=user, password=password)))
for n in range(RECORDS):
    provider.get_logger("tests.v9").emit(body=f"v9 {n}", severity_text="ERROR", severity_number=SeverityNumber.ERROR)
provider.shutdown()
""".replace("RECORDS", str(RECORDS))


def test_client_9_works_where_the_server_speaks_it(
    es_server: ElasticsearchNode, accounts: Accounts, es9_client_path: Path
) -> None:
    """7.17 accepts the 9.x client: `es setup`, `es check` and the exporter work. An 8.x server refuses
    it: the CLI names the server's version and says to install `elasticsearch<9` (exit 3)."""
    setup = run_with_client_9(es9_client_path, "-m", "otel_openreplay", "es", "setup", *superuser(es_server))
    if es_server.distribution.major == 8:
        assert setup.returncode == 3, setup.stderr
        assert f"Elasticsearch {es_server.version} speaks the client API of version 8 or 7" in setup.stderr
        assert 'pip install "elasticsearch<9"' in setup.stderr
        return
    assert setup.returncode == 0, setup.stderr
    service = f"versions-client9-{time.time_ns()}"
    direct = run_with_client_9(es9_client_path, "-c", _DIRECT_9, es_server.url, *accounts.writer, service)
    assert direct.returncode == 0, direct.stderr
    with contextlib.closing(es.client(es_server)) as admin:
        assert len(stored(admin, "logs", service, RECORDS)) == RECORDS
    user, password = accounts.reader
    check = run_with_client_9(
        es9_client_path, "-m", "otel_openreplay", "es", "check", "--session-id", "1",
        "--url", es_server.url, "--user", user, "--password", password,
    )  # fmt: skip
    assert check.returncode == 1, check.stderr  # ran both reads; no such session
    assert "shows nothing" in check.stdout
