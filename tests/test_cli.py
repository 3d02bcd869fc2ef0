"""The `otel-openreplay` command: usage, the error funnel, and `es setup` / `es api-key` on a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from elasticsearch import Elasticsearch

from otel_openreplay import cli
from otel_openreplay.template import FIELD_TYPES, field_types_from_mapping


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestUsage:
    """Argument errors exit 2 with argparse's message; nothing contacts a server."""

    def test_version(self, capsys):
        """--version prints the installed version and exits 0."""
        code, out, _ = _run(capsys, "--version")
        assert code == 0
        assert out.startswith("otel-openreplay ")

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["es"],
            ["es", "check"],
            ["es", "check", "--token", "t", "--session-id", "1"],
            ["es", "api-key"],
            ["es", "api-key", "--for", "admin"],
            ["es", "frobnicate"],
        ],
    )
    def test_argument_errors(self, capsys, argv):
        """Missing or conflicting arguments: exit 2, usage on stderr."""
        code, _, err = _run(capsys, *argv)
        assert code == 2
        assert "usage:" in err

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["es", "check", "--token", "bad token"], "is not a session token"),
            (["es", "check", "--session-id", "12ab"], "is not a session id"),
            (["es", "check", "--session-id", "1", "--since", "yesterday"], "is not a duration"),
            (["es", "api-key", "--for", "writer", "--legacy"], "--legacy is for --for openreplay only"),
        ],
    )
    def test_value_errors(self, capsys, argv, message):
        """Bad values: exit 2, ERROR and TIP on stderr, no traceback."""
        code, _, err = _run(capsys, *argv)
        assert code == 2
        assert err.startswith("ERROR: ")
        assert message in err
        assert "TIP: " in err
        assert "Traceback" not in err

    def test_bad_environment_variable(self, capsys, monkeypatch):
        """A bad OPENREPLAY_* variable is named in the error, exit 2."""
        monkeypatch.setenv("OPENREPLAY_ES_URL", "es.internal:9200")
        code, _, err = _run(capsys, "es", "setup")
        assert code == 2
        assert "ERROR: OPENREPLAY_ES_URL=" in err

    def test_flags_override_environment(self, capsys, monkeypatch):
        """A flag wins over its variable (a bad variable is not even read)."""
        monkeypatch.setenv("OPENREPLAY_ES_URL", "not a url")
        code, _, err = _run(capsys, "es", "setup", "--url", "http://127.0.0.1:9")
        assert code == 3
        assert "cannot connect" in err

    def test_timeout_is_a_connection_failure(self):
        """A server that took the connection but never answered: exit 3 (connect) with a tip, not 1 (nothing found)."""
        from elasticsearch import ConnectionTimeout

        message, tip, code = cli.explain_error(ConnectionTimeout("Connection timed out"))
        assert code == 3
        assert message == "Elasticsearch did not answer in time: Connection timed out"
        assert "$OPENREPLAY_ES_URL" in tip
        assert "not overloaded" in tip

    def test_module_entry(self):
        """`python -m otel_openreplay` is the same command."""
        done = subprocess.run(
            [sys.executable, "-m", "otel_openreplay", "--version"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0
        assert done.stdout.startswith("otel-openreplay ")

    @pytest.mark.parametrize("command", ["setup", "api-key", "check"])
    def test_help(self, capsys, command):
        """Each subcommand has help naming the connection variables."""
        code, out, _ = _run(capsys, "es", command, "--help")
        assert code == 0
        assert "$OPENREPLAY_ES_URL" in out


def _superuser(es_node) -> list[str]:
    return ["--url", es_node.url, "--user", es_node.user, "--password", es_node.password]


def _index() -> str:
    return f"setup-{uuid.uuid4().hex[:8]}"


@pytest.mark.e2e
class TestSetup:
    """`es setup` installs the template and index idempotently and names what is wrong."""

    def test_fresh_then_idempotent(self, capsys, es_node, es_client):
        """First run creates; second run changes nothing; the mapping is the contract's."""
        index = _index()
        code, out, _ = _run(capsys, "es", "setup", "--index", index, *_superuser(es_node))
        assert code == 0
        assert f"Index {index}: created." in out
        code, out, _ = _run(capsys, "es", "setup", "--index", index, *_superuser(es_node))
        assert code == 0
        assert f"Index {index}: exists." in out
        assert "Ready" in out
        types = field_types_from_mapping(es_client.indices.get_mapping(index=index).body)
        assert {name: types[name] for name in FIELD_TYPES} == {name: {kind} for name, kind in FIELD_TYPES.items()}
        template = es_client.indices.get_index_template(name=f"otel-openreplay-{index}")
        assert template["index_templates"][0]["index_template"]["index_patterns"] == [index]

    def test_missing_fields_added(self, capsys, es_node, es_client):
        """An existing index without the fields gets them added, and is then fine."""
        index = _index()
        es_client.indices.create(index=index, mappings={"properties": {"message": {"type": "text"}}})
        code, out, _ = _run(capsys, "es", "setup", "--index", index, *_superuser(es_node))
        assert code == 0
        assert "Mapped missing fields:" in out
        assert "level" in out

    @pytest.mark.parametrize(
        ("mapping", "says"),
        [
            ({"message": {"type": "keyword"}}, "`message` is mapped as keyword, expected text"),
            ({"utc_time": {"type": "keyword"}}, "`utc_time` is mapped as keyword, expected date"),
            ({"level": {"type": "long"}}, "`level` is mapped as long, expected keyword"),
            ({"tags": {"type": "integer"}}, "`tags` is mapped as integer, expected keyword"),
        ],
    )
    def test_broken_mapping_named(self, capsys, es_node, es_client, mapping, says):
        """A field whose type breaks OpenReplay is named with why: exit 5, nothing changed."""
        index = _index()
        es_client.indices.create(index=index, mappings={"properties": mapping})
        code, out, err = _run(capsys, "es", "setup", "--index", index, *_superuser(es_node))
        assert code == 5
        assert says in out
        assert err.startswith(f"ERROR: the mapping of `{index}` breaks OpenReplay")
        assert "reindex" in err
        field = next(iter(mapping))
        types = field_types_from_mapping(es_client.indices.get_mapping(index=index).body)
        assert types[field] == {mapping[field]["type"]}

    def test_needs_privileges(self, capsys, es_node, es_client):
        """A user without the right to install templates: exit 4 and what to do."""
        key = es_client.security.create_api_key(
            name="no-setup", role_descriptors={"r": {"indices": [{"names": ["x"], "privileges": ["read"]}]}}
        )
        code, _, err = _run(capsys, "es", "setup", "--url", es_node.url, "--api-key", key["encoded"])
        assert code == 4
        assert err.startswith("ERROR: these credentials may not do this")
        assert "TIP:" in err


@pytest.mark.e2e
class TestApiKey:
    """`es api-key` prints a working least-privilege key."""

    def test_json_shape(self, capsys, es_node):
        """--json prints exactly id, api_key and encoded, and the key authenticates."""
        code, out, _ = _run(capsys, "es", "api-key", "--for", "openreplay", "--json", *_superuser(es_node))
        assert code == 0
        key = json.loads(out)
        assert sorted(key) == ["api_key", "encoded", "id"]
        with Elasticsearch(es_node.url, api_key=(key["id"], key["api_key"])) as es:
            assert es.security.authenticate()["api_key"]["name"] == "openreplay-read-logs"

    def test_text_and_expiration(self, capsys, es_node, es_client):
        """The text output says where each part goes; --name and --expiration are applied."""
        code, out, _ = _run(
            capsys,
            "es",
            "api-key",
            "--for",
            "writer",
            "--name",
            "ci-writer",
            "--expiration",
            "1d",
            *_superuser(es_node),
        )
        assert code == 0
        assert "create_doc+auto_configure on logs" in out
        assert "OPENREPLAY_ES_API_KEY=<the encoded value above>" in out
        info = es_client.security.get_api_key(name="ci-writer")["api_keys"][0]
        assert info["expiration"] is not None


@pytest.mark.e2e
class TestVersionMismatch:
    """A client/server major mismatch is named."""

    def test_compatible_with_refused(self, es_node):
        """The server's own refusal of compatible-with=9 is explained as a client version problem."""
        from elastic_transport import HttpHeaders
        from elasticsearch import BadRequestError

        headers = HttpHeaders(
            {
                "accept": "application/vnd.elasticsearch+json; compatible-with=9",
                "content-type": "application/vnd.elasticsearch+json; compatible-with=9",
                "authorization": Elasticsearch(es_node.url, basic_auth=(es_node.user, es_node.password))._headers[
                    "authorization"
                ],
            }
        )
        with Elasticsearch(es_node.url) as es:
            meta, body = es.transport.perform_request("GET", "/_cluster/health", headers=headers)
        assert meta.status == 400
        error = BadRequestError(message=str(body), meta=meta, body=body)
        message, tip, code = cli.explain_error(error)
        assert "media_type_header_exception" in message
        assert "elasticsearch<9" in tip
        assert code == 3
