"""check-cors: the preflight a browser sends, and the Fetch standard's verdict on the answer."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from otel_openreplay import cli
from otel_openreplay.cors import (
    TRACKER_HEADER,
    Answer,
    Preflight,
    check,
    evaluate,
    is_header_name,
    preflight_headers,
    render_text,
    validate_origin,
)
from otel_openreplay.exit_codes import ExitCode

ORIGIN = "https://shop.example"
URL = "https://api.shop.example/checkout"


def verdict_for(answer: dict[str, str], status: int = 200, **preflight: object):
    return evaluate(Preflight(URL, ORIGIN, **preflight), Answer(status, answer))  # type: ignore[arg-type]


class TestPreflightRequest:
    def test_as_chromium_sends_it(self) -> None:
        """Header names lower-cased, sorted, comma-joined without spaces; the method as given."""
        sent = preflight_headers(ORIGIN, "GET", ["X-OpenReplay-SessionToken", "openReplaySession.id"])
        assert sent == {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "openreplaysession.id,x-openreplay-sessiontoken",
        }

    def test_origin_must_be_an_origin(self) -> None:
        assert validate_origin("HTTPS://Shop.Example:8443") == "https://shop.example:8443"
        for bad in ("shop.example", "https://shop.example/cart", "ftp://x", "https://u@shop.example"):
            with pytest.raises(ValueError, match="origin"):
                validate_origin(bad)

    def test_header_names(self) -> None:
        assert is_header_name("openReplaySession.id")
        assert not is_header_name("X Session")
        assert not is_header_name("")


class TestVerdict:
    def test_allowed_by_name_any_case(self) -> None:
        verdict = verdict_for(
            {
                "Access-Control-Allow-Origin": ORIGIN,
                "access-control-allow-headers": "content-type, X-OPENREPLAY-SESSIONTOKEN",
            }
        )
        assert verdict.allowed
        assert verdict.exit_code == ExitCode.ALLOWED

    def test_allowed_by_wildcards_without_credentials(self) -> None:
        assert verdict_for({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}).allowed

    def test_header_missing_from_the_list(self) -> None:
        verdict = verdict_for({"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": "Content-Type"})
        assert not verdict.allowed
        assert verdict.exit_code == ExitCode.REFUSED
        assert verdict.refused_headers == [TRACKER_HEADER]
        (problem,) = verdict.problems
        assert problem.code == "allow-headers"
        assert problem.fix == "Access-Control-Allow-Headers: Content-Type, X-OpenReplay-SessionToken"

    def test_no_allow_headers_at_all(self) -> None:
        verdict = verdict_for({"Access-Control-Allow-Origin": ORIGIN})
        assert verdict.problems[0].text.endswith("the answer has no Access-Control-Allow-Headers")

    def test_only_the_refused_one_is_named(self) -> None:
        verdict = verdict_for(
            {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": "x-openreplay-sessiontoken"},
            headers=(TRACKER_HEADER, "openReplaySession.id"),
        )
        assert verdict.refused_headers == ["openReplaySession.id"]

    def test_no_allow_origin(self) -> None:
        verdict = verdict_for({"Access-Control-Allow-Headers": "*"})
        assert [p.code for p in verdict.problems] == ["allow-origin"]
        assert verdict.problems[0].fix == f"Access-Control-Allow-Origin: {ORIGIN}"
        assert verdict.refused_headers == [TRACKER_HEADER]

    def test_other_origin_or_a_list(self) -> None:
        assert not verdict_for(
            {"Access-Control-Allow-Origin": "https://other.example", "Access-Control-Allow-Headers": "*"}
        ).allowed
        listed = verdict_for(
            {"Access-Control-Allow-Origin": f"{ORIGIN}, https://other.example", "Access-Control-Allow-Headers": "*"}
        )
        assert "a browser takes only one" in listed.problems[0].text

    def test_origin_is_compared_exactly(self) -> None:
        """A trailing slash is another origin to the browser."""
        assert not verdict_for(
            {"Access-Control-Allow-Origin": f"{ORIGIN}/", "Access-Control-Allow-Headers": "*"}
        ).allowed

    def test_wildcards_do_not_count_with_credentials(self) -> None:
        star = verdict_for({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}, credentials=True)
        assert {p.code for p in star.problems} == {"credentials", "allow-headers"}
        exact = verdict_for(
            {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": TRACKER_HEADER}, credentials=True
        )
        assert [p.code for p in exact.problems] == ["credentials"]
        good = verdict_for(
            {
                "Access-Control-Allow-Origin": ORIGIN,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Headers": TRACKER_HEADER,
            },
            credentials=True,
        )
        assert good.allowed

    def test_authorization_is_never_covered_by_the_wildcard(self) -> None:
        verdict = verdict_for(
            {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}, headers=("Authorization",)
        )
        assert verdict.refused_headers == ["Authorization"]

    def test_methods(self) -> None:
        base = {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": "*"}
        assert verdict_for(base, method="POST").allowed  # safelisted
        assert verdict_for(base, method="PUT").allowed  # no list: the preflight's own method
        refused = verdict_for({**base, "Access-Control-Allow-Methods": "GET, POST"}, method="DELETE")
        assert [p.code for p in refused.problems] == ["allow-methods"]
        assert refused.problems[0].fix == "Access-Control-Allow-Methods: GET, POST, DELETE"
        assert verdict_for({**base, "Access-Control-Allow-Methods": "*"}, method="DELETE").allowed

    @pytest.mark.parametrize("status", [301, 400, 403, 404, 405, 500])
    def test_status_not_ok(self, status: int) -> None:
        verdict = verdict_for({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}, status=status)
        assert [p.code for p in verdict.problems] == ["status"]
        assert f"HTTP {status}" in verdict.problems[0].text

    def test_text_names_the_header_and_the_recipes(self) -> None:
        text = render_text(verdict_for({"Access-Control-Allow-Origin": ORIGIN}))
        assert "refused: the browser blocks the request: X-OpenReplay-SessionToken never reaches the app" in text
        assert "add: Access-Control-Allow-Headers: X-OpenReplay-SessionToken" in text
        assert 'CORS_ALLOW_HEADERS = (*default_headers, "x-openreplay-sessiontoken")' in text


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, dict[str, str]]] = {}
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_OPTIONS(self) -> None:
        self.seen.append((self.command, dict(self.headers.items())))
        self.send_response(204)
        for name, value in self.answers.get(self.path, {}).items():
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:
        self.seen.append((self.command, dict(self.headers.items())))
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    _Handler.answers = {
        "/good": {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": "x-openreplay-sessiontoken"},
        "/bad": {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Allow-Headers": "content-type"},
    }
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class TestOverHttp:
    def test_sends_only_the_preflight(self, server: str) -> None:
        verdict = check(f"{server}/good", ORIGIN)
        assert verdict.allowed
        ((method, headers),) = _Handler.seen
        assert method == "OPTIONS"
        assert headers["Origin"] == ORIGIN
        assert headers["Access-Control-Request-Method"] == "GET"
        assert headers["Access-Control-Request-Headers"] == "x-openreplay-sessiontoken"

    def test_cli_exit_codes(self, server: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["check-cors", f"{server}/good", "--origin", ORIGIN]) == 0
        assert "allowed: the browser sends X-OpenReplay-SessionToken" in capsys.readouterr().out
        assert cli.main(["check-cors", f"{server}/bad", "--origin", ORIGIN]) == 1
        assert "add: Access-Control-Allow-Headers: content-type, X-OpenReplay-SessionToken" in capsys.readouterr().out
        assert (
            cli.main(
                ["check-cors", f"{server}/bad", "--origin", ORIGIN, "--header", "X-OpenReplay-Session-Token", "--json"]
            )
            == 1
        )
        answer = json.loads(capsys.readouterr().out)
        assert answer["refused_headers"] == ["X-OpenReplay-Session-Token"]
        assert answer["request"]["Access-Control-Request-Headers"] == "x-openreplay-session-token"

    def test_cli_usage_and_connection_errors(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["check-cors", URL, "--origin", "shop.example"]) == 2
        assert "ERROR: origin 'shop.example' is not scheme://host[:port]" in capsys.readouterr().err
        assert cli.main(["check-cors", URL, "--origin", ORIGIN, "--header", "bad header"]) == 2
        assert cli.main(["check-cors", "http://127.0.0.1:9/x", "--origin", ORIGIN, "--timeout", "2"]) == 3
        err = capsys.readouterr().err
        assert "ERROR: cannot reach http://127.0.0.1:9/x" in err
        assert "Traceback" not in err
