"""What a server's version or settings refuse, explained (otel_openreplay.compat); the bodies are the servers' own.

Each body below is what Elasticsearch answered here (7.17.29 for API keys and the unknown parameter, 8.19.21
for the 9.x client's header); ``tests/test_es_versions.py`` checks the same messages against the real servers.
"""

from __future__ import annotations

from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import BadRequestError

from otel_openreplay import cli
from otel_openreplay.compat import client_mismatch, explain_refusal, is_version_mismatch
from otel_openreplay.connection import describe_api_error

API_KEYS_OFF = {
    "error": {
        "root_cause": [{"type": "feature_not_enabled_exception", "reason": "api keys are not enabled"}],
        "type": "feature_not_enabled_exception",
        "reason": "api keys are not enabled",
        "feature": "api_keys",
    },
    "status": 400,
}
UNKNOWN_PARAMETER = {
    "error": {
        "type": "illegal_argument_exception",
        "reason": "request [/_bulk] contains unrecognized parameter: [include_source_on_error]",
    },
    "status": 400,
}
CLIENT_9_ON_8 = {
    "error": {
        "type": "media_type_header_exception",
        "reason": "Invalid media-type value on headers [Accept, Content-Type]",
        "caused_by": {
            "type": "status_exception",
            "reason": "Accept version must be either version 8 or 7, but found 9. "
            "Accept=application/vnd.elasticsearch+json; compatible-with=9",
        },
    },
    "status": 400,
}


def refused(body: dict[str, Any]) -> BadRequestError:
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    return BadRequestError(message=body["error"]["type"], meta=meta, body=body)


class TestExplainRefusal:
    def test_api_keys_off_names_the_version_and_the_setting(self) -> None:
        """7.x's API keys off: the version, the elasticsearch.yml line, and HTTPS as the other way."""
        message, tip = explain_refusal(refused(API_KEYS_OFF), "7.17.29") or ("", "")
        assert message.startswith("Elasticsearch 7.17.29 has API keys turned off")
        assert "xpack.security.authc.api_key.enabled: true" in tip
        assert "HTTPS" in tip

    def test_unknown_parameter_is_named(self) -> None:
        """A parameter the server is too old for is named, with the version."""
        message, _ = explain_refusal(refused(UNKNOWN_PARAMETER), "8.0.0") or ("", "")
        assert message.startswith("Elasticsearch 8.0.0 does not know the request parameter [include_source_on_error]")

    def test_unknown_version_is_said(self) -> None:
        """Without a version (no privilege to read it) the message says so rather than guess."""
        message, _ = explain_refusal(refused(API_KEYS_OFF), None) or ("", "")
        assert "version unknown" in message

    def test_other_errors_are_not_version_refusals(self) -> None:
        """A mapping error is not about the server's version: None, and the funnel's usual text is used."""
        body = {"error": {"type": "document_parsing_exception", "reason": "failed to parse field [error]"}}
        assert explain_refusal(refused(body), "8.19.21") is None

    @pytest.mark.parametrize(
        ("body", "code"), [(API_KEYS_OFF, 6), (UNKNOWN_PARAMETER, 6), ({"error": {"type": "x", "reason": "y"}}, 1)]
    )
    def test_cli_exit_codes(self, body: dict[str, Any], code: int, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
        """Through the CLI's funnel: a version or settings refusal exits 6, anything else as before."""

        def refuse(*_: Any, **__: Any) -> None:
            raise refused(body)

        monkeypatch.setattr("otel_openreplay.keys.create_key", refuse)
        monkeypatch.setattr("otel_openreplay.compat.server_version", lambda client: "7.17.29")
        assert cli.main(["es", "api-key", "--for", "writer", "--url", "http://127.0.0.1:9"]) == code
        err = capsys.readouterr().err
        assert err.startswith("ERROR: ")
        if code == 6:
            assert "Elasticsearch 7.17.29" in err
            assert "\nTIP: " in err

    def test_client_9_on_8(self) -> None:
        """The 9.x client's header refused by an 8.x server: the pin is the tip (the server's reason names 9)."""
        message, tip = explain_refusal(refused(CLIENT_9_ON_8), "8.19.21") or ("", "")
        assert message.startswith("Elasticsearch 8.19.21 speaks the client API of version 8 or 7, not the 9.x")
        assert 'pip install "elasticsearch<9"' in tip


class TestClientMismatch:
    """The 9.x client against an 8.x server: one message, wherever it is met."""

    def test_every_path_says_the_same(self) -> None:
        """The CLI's funnel, the version refusal and the error description all give compat's tip."""
        error = refused(CLIENT_9_ON_8)
        message, tip = client_mismatch(error) or ("", "")
        assert is_version_mismatch(error)
        assert explain_refusal(error, None) == (message, tip)
        assert cli.explain_error(error) == (message, tip, 3)
        assert describe_api_error(error).endswith(f" — {tip}")

    def test_other_errors_are_not_a_mismatch(self) -> None:
        """An unknown parameter is no client mismatch: no pin in the description."""
        error = refused(UNKNOWN_PARAMETER)
        assert client_mismatch(error) is None
        assert "elasticsearch<" not in describe_api_error(error)
