"""The project's real Elasticsearch (tests/stack/es.py): cache, security, plugin, lifecycle, cluster."""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AuthorizationException, Elasticsearch

from tests.stack import es
from tests.stack.__main__ import main as stack_main

pytestmark = pytest.mark.e2e

LOGS_READER = {"indices": [{"names": ["logs"], "privileges": ["read"]}]}
"""The least privilege both OpenReplay generations need (docs/DESIGN.md)."""


def _raw_get(url: str, authorization: str) -> dict[str, Any]:
    """GET with a hand-written Authorization header, as OpenReplay sends it."""
    request = urllib.request.Request(url, headers={"Authorization": authorization})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


class TestNode:
    def test_cluster_serves_every_primary(self, es_client: Elasticsearch) -> None:
        """The node holds every primary shard (yellow only for replicas of other tests' indexes: one node)."""
        health = es_client.cluster.health(wait_for_status="yellow", timeout="30s")
        assert health["status"] in ("green", "yellow")
        assert health["unassigned_primary_shards"] == 0

    def test_elastic_authenticates(self, es_node: es.ElasticsearchNode, es_client: Elasticsearch) -> None:
        """The superuser logs in with the per-node bootstrap password."""
        me = es_client.security.authenticate()
        assert me["username"] == es_node.user == "elastic"
        assert "superuser" in me["roles"]

    def test_listens_on_loopback_only(self, es_node: es.ElasticsearchNode, es_client: Elasticsearch) -> None:
        """HTTP and transport are bound to 127.0.0.1 and nothing else."""
        info = es_client.nodes.info(metric="http,transport")
        (node,) = info["nodes"].values()
        bound = node["http"]["bound_address"] + node["transport"]["bound_address"]
        assert all(address.startswith("127.0.0.1:") for address in bound), bound
        assert es_node.url == f"http://127.0.0.1:{es_node.http_port}"


class TestAnalysisPlugin:
    def test_security_index_analyzer_types_exist(self, es_client: Elasticsearch) -> None:
        """uax_url_email, pattern_capture and unique behave as the security index's email analyzer needs."""
        capture = {"type": "pattern_capture", "preserve_original": True, "patterns": ["([^@]+)", "@(.+)"]}
        result = es_client.indices.analyze(
            tokenizer="uax_url_email",
            filter=[capture, "lowercase", "unique"],
            text="John.Doe@Example.com john.doe@example.com",
        )
        assert [token["token"] for token in result["tokens"]] == [
            "john.doe@example.com",
            "john.doe",
            "example.com",
        ]

    def test_api_key_created_and_used(self, es_node: es.ElasticsearchNode) -> None:
        """POST /_security/api_key succeeds and the key authenticates as `ApiKey <encoded>`."""
        key = es.create_api_key(es_node, "stack-test", {"logs_reader": LOGS_READER})
        me = _raw_get(f"{es_node.url}/_security/_authenticate", key.header)
        assert me["authentication_type"] == "api_key"
        assert me["api_key"]["id"] == key.id
        with es.client(es_node, api_key=(key.id, key.api_key)) as by_id:
            assert by_id.security.authenticate()["api_key"]["name"] == "stack-test"


class TestLeastPrivilege:
    def test_read_role_searches_logs_but_cannot_index(
        self, es_node: es.ElasticsearchNode, es_client: Elasticsearch
    ) -> None:
        """A user with only `read` on `logs` runs OpenReplay's query and is refused a write."""
        session_id = str(secrets.randbelow(10**15) + 10**15)  # the shared node's `logs` holds other tests' records
        es_client.index(index="logs", document={"message": f"openReplaySession.id={session_id} boom"}, refresh=True)
        es.create_role(es_node, "logs_reader", LOGS_READER)
        es.create_user(es_node, "replay", "replay-test-password", ["logs_reader"])
        with es.client(es_node, basic_auth=("replay", "replay-test-password")) as reader:
            phrase = {"match_phrase": {"message": f"openReplaySession.id={session_id}"}}
            hits = reader.search(index="logs", query=phrase)
            assert hits["hits"]["total"]["value"] == 1
            with pytest.raises(AuthorizationException):
                reader.index(index="logs", document={"message": "not allowed"})


class TestDistributionCache:
    @pytest.mark.usefixtures("es_node")
    def test_second_call_downloads_and_builds_nothing(self, monkeypatch) -> None:
        """With a warm cache, ensure_distribution touches neither the network nor javac."""
        home = es.distribution_home()
        marker = home / ".otelor-plugin-sha256"
        before = (home.stat().st_mtime_ns, marker.stat().st_mtime_ns)

        def forbidden(*args: object) -> Path:
            raise AssertionError("the warm cache was rebuilt")

        monkeypatch.setattr(es, "_download", forbidden)
        monkeypatch.setattr(es, "_build_plugin", forbidden)
        assert es.ensure_distribution() == home
        assert (home.stat().st_mtime_ns, marker.stat().st_mtime_ns) == before
        assert marker.read_text().strip() == es.plugin_digest()
        assert not list(es.cache_dir().glob("*.zip*")), "the archive is removed once unpacked"


class TestLifecycle:
    def test_kill_then_start_keeps_data_and_password(self) -> None:
        """After SIGKILL and restart() the node answers on the same port, with its documents and keys."""
        with es.ElasticsearchNode(heap_mb=384) as node:
            key = es.create_api_key(node, "survives-restart")
            with es.client(node) as superuser:
                superuser.index(index="logs", id="1", document={"message": "kept"}, refresh=True)
            port = node.http_port
            node.kill()
            assert not node.running
            node.restart()
            assert node.http_port == port
            with es.client(node) as superuser:
                assert superuser.get(index="logs", id="1")["_source"]["message"] == "kept"
            assert _raw_get(f"{node.url}/_security/_authenticate", key.header)["api_key"]["id"] == key.id
            base_dir = node.base_dir
        assert base_dir is not None
        assert not base_dir.exists(), "leaving the block deletes the node's directory"

    def test_start_failure_reports_the_log(self) -> None:
        """A node that cannot start raises with the tail of its log."""
        node = es.ElasticsearchNode(settings={"no.such.setting": 1})
        node.start()
        try:
            with pytest.raises(es.ElasticsearchStartError, match=r"no\.such\.setting"):
                node.wait_ready(60)
        finally:
            node.remove()


class TestCluster:
    def test_two_nodes_form_one_cluster(self) -> None:
        """Two loopback nodes join, go green, and serve the same data through either node."""
        with es.ElasticsearchCluster(2) as cluster:
            with es.client(cluster) as superuser:
                health = superuser.cluster.health(wait_for_status="green", timeout="60s")
                assert health["number_of_nodes"] == 2
                superuser.index(index="logs", id="1", document={"message": "replicated"}, refresh=True)
            second = cluster.nodes[1]
            with Elasticsearch(second.url, basic_auth=(cluster.user, cluster.password)) as direct:
                assert direct.get(index="logs", id="1")["_source"]["message"] == "replicated"


class TestCommandLine:
    def test_up_status_down(self, tmp_path: Path, monkeypatch, capsys) -> None:
        """`es up` prints env lines, `es status` sees the node, `es down` stops it and deletes its data."""
        state = tmp_path / "es-up.json"  # apart from a developer's own `es up`; the distribution is shared
        monkeypatch.setattr("tests.stack.__main__._state_file", lambda: state)
        assert stack_main(["es", "up", "--heap-mb", "384"]) == 0
        env = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
        try:
            assert env["OPENREPLAY_ES_USER"] == "elastic"
            url, password = env["OPENREPLAY_ES_URL"], env["OPENREPLAY_ES_PASSWORD"]
            assert es.cluster_health(url, "elastic", password) is not None
            assert state.stat().st_mode & 0o777 == 0o600
            assert stack_main(["es", "status"]) == 0
            assert url in capsys.readouterr().out
            base_dir = Path(json.loads(state.read_text())["base_dir"])
        finally:
            assert stack_main(["es", "down"]) == 0
        assert not base_dir.exists()
        assert es.cluster_health(url, "elastic", password) is None
        assert stack_main(["es", "status"]) == 3
