"""Least-privilege API keys: their role descriptors, and what they can and cannot do on a real server."""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import AuthorizationException, Elasticsearch, helpers

from otel_openreplay.doctor import current_request, legacy_request
from otel_openreplay.keys import (
    WRITER_INDEX_PRIVILEGES,
    create_key,
    default_name,
    role_descriptors,
    usage_text,
)
from otel_openreplay.template import setup_index


class TestRoleDescriptors:
    """Each key has exactly one role with the least privileges."""

    def test_openreplay(self):
        """OpenReplay's key reads the index and nothing else."""
        assert role_descriptors("openreplay", "logs") == {
            "openreplay_read": {"cluster": [], "indices": [{"names": ["logs"], "privileges": ["read"]}]}
        }

    def test_openreplay_legacy(self):
        """--legacy adds cluster monitor for OpenReplay <= 1.20's connection test."""
        role = role_descriptors("openreplay", "logs", legacy=True)["openreplay_read"]
        assert role["cluster"] == ["monitor"]

    def test_writer(self):
        """The writers' key creates documents (and the index, and new fields) only."""
        assert role_descriptors("writer", "app-logs") == {
            "otel_openreplay_write": {
                "cluster": [],
                "indices": [{"names": ["app-logs"], "privileges": ["create_doc", "auto_configure"]}],
            }
        }

    def test_maintenance(self):
        """The maintenance key rolls the alias over and reads, sizes and deletes the numbered indices only."""
        assert role_descriptors("maintenance", "logs") == {
            "otel_openreplay_maintenance": {
                "cluster": [],
                "indices": [
                    {"names": ["logs"], "privileges": ["manage"]},
                    {"names": ["logs-0*"], "privileges": ["read", "view_index_metadata", "monitor", "delete_index"]},
                ],
            }
        }
        with pytest.raises(ValueError, match="OpenReplay key only"):
            role_descriptors("maintenance", "logs", legacy=True)

    @pytest.mark.parametrize("purpose", ["openreplay", "writer", "maintenance"])
    def test_never_all(self, purpose):
        """No key ever gets `all`, at cluster or index level."""
        text = str(role_descriptors(purpose, "logs"))
        assert "'all'" not in text

    def test_legacy_writer_refused(self):
        """--legacy makes no sense for the writer and is refused."""
        with pytest.raises(ValueError, match="OpenReplay key only"):
            role_descriptors("writer", "logs", legacy=True)

    def test_default_names(self):
        """Default key names say who they are for and which index."""
        assert default_name("openreplay", "logs") == "openreplay-read-logs"
        assert default_name("writer", "logs") == "otel-openreplay-write-logs"
        assert default_name("maintenance", "logs") == "otel-openreplay-maintenance-logs"


def _key_client(es_node, encoded: str) -> Elasticsearch:
    return Elasticsearch(es_node.url, api_key=encoded, request_timeout=30)


def _refused(call) -> bool:
    try:
        call()
    except AuthorizationException:
        return True
    return False


@pytest.mark.e2e
class TestOpenReplayKey:
    """OpenReplay's key runs both generations' reads and nothing else."""

    def test_reads_but_cannot_write_delete_or_read_elsewhere(self, es_node, es_client):
        """Both reads (incl. <= 1.20's scroll) work; writing, deleting and other indices are refused."""
        index, other = f"or-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
        setup_index(es_client, index)
        es_client.index(index=other, document={"message": "x"}, refresh=True)
        es_client.index(
            index=index,
            id="1",
            refresh=True,
            document={"message": "[openReplaySession.id=42] boom", "utc_time": "2026-11-26T14:07:34.120Z"},
        )
        key = create_key(es_client, "openreplay", index)
        reader = _key_client(es_node, key.encoded)
        try:
            legacy = legacy_request(index, 0)
            answer = reader.search(
                index=index, query=legacy["body"]["query"], size=1000, sort="utc_time:asc", scroll="2m"
            )
            reader.scroll(scroll_id=answer["_scroll_id"], scroll="2m")
            reader.clear_scroll(scroll_id=answer["_scroll_id"])
            current = current_request("42")["body"]
            found = reader.search(index=index, query=current["query"], size=1000, track_total_hits=True)
            assert found["hits"]["total"]["value"] == 1
            assert reader.search(index=index, size=1)["hits"]["total"]["value"] == 1  # 1.21's validation call
            assert _refused(lambda: reader.index(index=index, document={"message": "x"}))
            assert _refused(lambda: reader.delete(index=index, id="1"))
            assert _refused(lambda: reader.indices.delete(index=index))
            assert _refused(lambda: reader.search(index=other))
            assert _refused(lambda: reader.cluster.health())
        finally:
            reader.close()

    def test_legacy_key_passes_the_connection_test(self, es_node, es_client):
        """With --legacy the key holds cluster monitor (what <= 1.20's HEAD / needs)."""
        key = create_key(es_client, "openreplay", "logs", legacy=True)
        reader = _key_client(es_node, key.encoded)
        try:
            assert reader.cluster.health()["status"] in ("green", "yellow")
            privileges = reader.security.has_privileges(cluster=["monitor", "manage"])
            assert privileges["cluster"] == {"monitor": True, "manage": False}
        finally:
            reader.close()


@pytest.mark.e2e
class TestWriterKey:
    """The writers' key creates documents and nothing else."""

    def test_creates_but_cannot_read_overwrite_or_delete(self, es_node, es_client):
        """Bulk create works (index auto-created, new fields mapped); read, overwrite, delete are refused."""
        index, other = f"w-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
        key = create_key(es_client, "writer", index)
        assert key.role_descriptors["otel_openreplay_write"]["indices"][0]["privileges"] == list(
            WRITER_INDEX_PRIVILEGES
        )
        writer = _key_client(es_node, key.encoded)
        try:
            action = {"_op_type": "create", "_index": index, "_id": "a", "_source": {"message": "m", "new": 1}}
            results = list(helpers.streaming_bulk(writer, [action], raise_on_error=False))
            assert results[0][0] is True
            again = list(helpers.streaming_bulk(writer, [action], raise_on_error=False))
            assert again[0][1]["create"]["status"] == 409
            assert _refused(lambda: writer.search(index=index))
            assert _refused(lambda: writer.get(index=index, id="a"))
            assert _refused(lambda: writer.index(index=index, id="a", document={"message": "overwrite"}))
            assert _refused(lambda: writer.delete(index=index, id="a"))
            assert _refused(lambda: writer.indices.delete(index=index))
            assert _refused(lambda: writer.index(index=other, document={"message": "x"}))
        finally:
            writer.close()

    def test_create_doc_alone_is_not_enough(self, es_node, es_client):
        """Without auto_configure a missing index cannot be created (why the writer key has it)."""
        index = f"w-{uuid.uuid4().hex[:8]}"
        created = es_client.security.create_api_key(
            name="create-doc-only",
            role_descriptors={"r": {"indices": [{"names": [index], "privileges": ["create_doc"]}]}},
        )
        writer = _key_client(es_node, created["encoded"])
        try:
            action = {"_op_type": "create", "_index": index, "_id": "a", "_source": {"message": "m"}}
            ((ok, item),) = helpers.streaming_bulk(writer, [action], raise_on_error=False)
            assert ok is False
            assert item["create"]["status"] == 403
        finally:
            writer.close()


@pytest.mark.e2e
class TestMaintenanceKey:
    """The key `es rotate` runs with: it rolls over and deletes whole numbered indices, and nothing else."""

    def test_rotates_but_cannot_touch_documents_or_other_indices(self, es_node, es_client, capsys):
        """`es api-key --for maintenance` makes a key that runs `es rotate` (rollover); it can delete a numbered
        index whole but cannot write, delete a document, read another index, change templates or the cluster."""
        import json
        import time

        from otel_openreplay import cli

        index, other = f"mt-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
        superuser = ["--url", es_node.url, "--user", es_node.user, "--password", es_node.password]
        assert cli.main(["es", "api-key", "--for", "maintenance", "--index", index, "--json", *superuser]) == 0
        encoded = json.loads(capsys.readouterr().out)["encoded"]
        assert cli.main(["es", "setup", "--index", index, "--retention", "30d", "--rollover", "1s", *superuser]) == 0
        es_client.create(index=index, id="a", document={"message": "m", "@timestamp": "2026-01-01T00:00:00Z"})
        es_client.index(index=other, document={"message": "x"}, refresh=True)
        time.sleep(1.5)
        capsys.readouterr()
        keyed = ["--url", es_node.url, "--api-key", encoded, "--index", index]
        assert cli.main(["es", "rotate", "--json", *keyed]) == 0
        assert json.loads(capsys.readouterr().out)["rolled_over_to"] == f"{index}-000002"
        keeper = _key_client(es_node, encoded)
        try:
            assert _refused(lambda: keeper.index(index=index, document={"message": "forged"}))
            assert _refused(lambda: keeper.delete(index=f"{index}-000001", id="a"))
            assert _refused(lambda: keeper.search(index=other))
            assert _refused(lambda: keeper.indices.delete(index=other))
            assert _refused(lambda: keeper.indices.put_index_template(name="x", index_patterns=["x"]))
            assert _refused(lambda: keeper.cluster.health())
            keeper.indices.delete(index=f"{index}-000001")  # whole numbered indices: what rotate deletes
        finally:
            keeper.close()
        assert cli.main(["es", "rotate", "--index", other, *superuser]) == 5
        assert "is a plain index" in capsys.readouterr().err


class TestUsageText:
    """The printed instructions say where each part of the key goes."""

    def test_openreplay_form(self):
        """OpenReplay's form takes id and api_key, never the encoded form."""
        from otel_openreplay.keys import CreatedKey

        key = CreatedKey("n", "ID1", "SECRET1", "ENC1", role_descriptors("openreplay", "app"))
        text = usage_text(key, "openreplay", "https://es:9243", "app")
        assert "api_key_id): ID1" in text
        assert "(api_key):       SECRET1" in text
        assert "NOT the encoded form" in text
        assert "reads `logs`, not `app`" in text

    def test_writer_environment(self):
        """The writer's key goes into OPENREPLAY_ES_API_KEY in its encoded form."""
        from otel_openreplay.keys import CreatedKey

        key = CreatedKey("n", "ID1", "SECRET1", "ENC1", role_descriptors("writer", "logs"))
        text = usage_text(key, "writer", "https://es:9243", "logs")
        assert "OPENREPLAY_ES_API_KEY=<the encoded value above>" in text
        assert "encoded:  ENC1" in text
