"""OpenReplayPropagator: headers in (any spelling, validated), headers out (unless kept local)."""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import DefaultGetter, Getter

from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import Session, current_session
from otel_openreplay.settings import Settings
from tests.conftest import TOKEN, TOKEN_SESSION_ID


def propagator(**overrides: object) -> OpenReplayPropagator:
    return OpenReplayPropagator(Settings.from_env({}, **overrides))


class TestExtract:
    @pytest.mark.parametrize(
        "header",
        [
            "X-OpenReplay-SessionToken",
            "x-openreplay-sessiontoken",
            "X-OpenReplay-Session-Token",
            "x-openreplay-session-token",
        ],
    )
    def test_token_header_spellings(self, header: str) -> None:
        """Both token header names are read, as sent or lowercased (ASGI, HTTP/2)."""
        ctx = propagator().extract({header: TOKEN})
        assert current_session(ctx) == Session(TOKEN, TOKEN_SESSION_ID)

    @pytest.mark.parametrize("header", ["openReplaySession.id", "openreplaysession.id"])
    def test_session_id_header(self, header: str) -> None:
        """The ≥1.21 id header alone is a session."""
        assert current_session(propagator().extract({header: "7297413432396165"})) == Session(None, "7297413432396165")

    def test_surrounding_whitespace_is_ignored(self) -> None:
        """A value padded by a proxy is still the same token."""
        assert current_session(propagator().extract({"X-OpenReplay-SessionToken": f"  {TOKEN} "})).token == TOKEN

    @pytest.mark.parametrize("value", ["a b", "x] [openReplaySessionToken=forged", "t\r\nX-Evil: 1", "x" * 300])
    def test_invalid_token_is_dropped_with_a_debug_log(self, value: str, caplog: pytest.LogCaptureFixture) -> None:
        """A hostile header gives no session, a debug line, and no exception."""
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay"):
            ctx = propagator().extract({"X-OpenReplay-SessionToken": value})
        assert current_session(ctx) is None
        assert "dropped an invalid session header" in caplog.text

    def test_no_header_leaves_context_unchanged(self) -> None:
        """A request without a session header gets no session."""
        assert current_session(propagator().extract({"content-type": "text/html"})) is None

    def test_custom_header_names(self) -> None:
        """Configured header names replace the defaults."""
        p = propagator(token_headers=["X-Session"])
        assert current_session(p.extract({"X-Session": TOKEN})).token == TOKEN
        assert current_session(p.extract({"X-OpenReplay-SessionToken": TOKEN})) is None

    def test_w3c_baggage_session_is_validated_and_kept(self) -> None:
        """A session that came in W3C baggage (after the baggage propagator) is validated and used."""
        composite = CompositePropagator([W3CBaggagePropagator(), propagator()])
        ctx = composite.extract({"baggage": f"openReplaySessionToken={TOKEN}"})
        assert current_session(ctx) == Session(TOKEN, TOKEN_SESSION_ID)

    def test_forged_w3c_baggage_is_not_a_session(self) -> None:
        """A forged baggage value never becomes a session."""
        composite = CompositePropagator([W3CBaggagePropagator(), propagator()])
        ctx = composite.extract({"baggage": "openReplaySessionToken=a%5D%20%5Bx"})
        assert current_session(ctx) is None

    def test_a_broken_getter_never_raises(self) -> None:
        """A carrier the getter cannot read leaves the context as it was."""

        class Broken:
            def get(self, carrier: object, key: str) -> list[str]:
                raise RuntimeError("boom")

            def keys(self, carrier: object) -> list[str]:
                return []

        assert current_session(propagator().extract({}, getter=Broken())) is None


class TestInject:
    def test_writes_first_header_of_each_list(self) -> None:
        """Outgoing requests carry the token and the id, under the first configured names."""
        p = propagator()
        carrier: dict[str, str] = {}
        p.inject(carrier, p.extract({"x-openreplay-session-token": TOKEN}))
        assert carrier == {"X-OpenReplay-SessionToken": TOKEN, "openReplaySession.id": TOKEN_SESSION_ID}
        assert p.fields == {"X-OpenReplay-SessionToken", "openReplaySession.id"}

    def test_propagate_false_keeps_the_session_in_the_process(self) -> None:
        """No header and no W3C baggage entry leaves the process when propagate is off."""
        composite = CompositePropagator([W3CBaggagePropagator(), propagator(propagate=False)])
        ctx = composite.extract({"X-OpenReplay-SessionToken": TOKEN, "baggage": "openReplaySession.id=5,k=v"})
        assert current_session(ctx) == Session(TOKEN, TOKEN_SESSION_ID)  # our header wins over baggage
        carrier: dict[str, str] = {}
        composite.inject(carrier, ctx)
        assert carrier == {"baggage": "k=v"}
        assert propagator(propagate=False).fields == set()

    def test_propagate_true_also_sends_w3c_baggage(self) -> None:
        """With propagation on, W3C baggage carries the session as well (the documented trade-off)."""
        composite = CompositePropagator([W3CBaggagePropagator(), propagator()])
        carrier: dict[str, str] = {}
        composite.inject(carrier, composite.extract({"X-OpenReplay-SessionToken": TOKEN}))
        assert f"openReplaySessionToken={TOKEN}" in carrier["baggage"]

    def test_nothing_to_inject_without_session(self) -> None:
        """A context without session adds no header."""
        carrier: dict[str, str] = {}
        propagator().inject(carrier, baggage.set_baggage("k", "v"))
        assert carrier == {}


class TestEnvironment:
    def test_bad_env_makes_it_inert_with_an_error(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad OTEL_OPENREPLAY_* value is logged naming the variable; nothing is extracted or sent."""
        monkeypatch.setenv("OTEL_OPENREPLAY_PROPAGATE", "maybe")
        p = OpenReplayPropagator()
        assert "OTEL_OPENREPLAY_PROPAGATE='maybe'" in caplog.text
        ctx = p.extract({"X-OpenReplay-SessionToken": TOKEN})
        assert current_session(ctx) is None
        carrier: dict[str, str] = {}
        p.inject(carrier, ctx)
        assert carrier == {}

    def test_entry_point_loads_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_PROPAGATORS=...,openreplay finds the propagator by its entry point name."""
        from opentelemetry.util._importlib_metadata import entry_points

        (found,) = entry_points(group="opentelemetry_propagator", name="openreplay")
        assert found.load() is OpenReplayPropagator


class _NameByName(Getter[Any]):
    """Wraps a getter so that extract cannot recognise it: the reference, name-by-name read."""

    def __init__(self, inner: Getter[Any]) -> None:
        self._inner = inner

    def get(self, carrier: Any, key: str) -> list[str] | None:
        return self._inner.get(carrier, key)

    def keys(self, carrier: Any) -> list[str]:
        return self._inner.keys(carrier)


class _DefaultByName(DefaultGetter):
    """DefaultGetter with a get of its own: read name by name, case-sensitive, like the plain fast path."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        return super().get(carrier, key)


PLAIN_CARRIERS: list[dict[str, Any]] = [
    {},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"X-OpenReplay-SessionToken": TOKEN},
    {"x-openreplay-session-token": f" {TOKEN} ", "openreplaysession.id": "42"},
    {"X-OPENREPLAY-SESSIONTOKEN": TOKEN},  # a spelling a case-sensitive mapping does not match
    {"X-OpenReplay-SessionToken": [TOKEN, "other"]},  # Kafka/Celery-style list values
    {"X-OpenReplay-SessionToken": TOKEN.encode()},  # bytes: DefaultGetter lists its ints
    {"X-OpenReplay-SessionToken": "", "openReplaySession.id": "7"},
    {"X-OpenReplay-SessionToken": None, "openReplaySession.id": 12},
    {"openReplaySession.id": "x] [forged"},
]

OTHER_TOKEN = "1bq7y3xsc6hdd.0.1dj3n1ak.5Fm1u4R"
OTHER_SESSION_ID = str(int("1bq7y3xsc6hdd", 36))

TWO_SPELLINGS: list[tuple[dict[str, str], Session]] = [
    # the second configured spelling comes first in the request: the first configured one still wins
    (
        {"X-OpenReplay-Session-Token": OTHER_TOKEN, "X-OpenReplay-SessionToken": TOKEN},
        Session(TOKEN, TOKEN_SESSION_ID),
    ),
    (
        {"X-OpenReplay-SessionToken": TOKEN, "X-OpenReplay-Session-Token": OTHER_TOKEN},
        Session(TOKEN, TOKEN_SESSION_ID),
    ),
    # two id names: the first configured (openReplaySession.id) wins, sent second
    (
        {"X-OpenReplay-Session-Id": "42", "openReplaySession.id": "7", "X-OpenReplay-Session-Token": TOKEN},
        Session(TOKEN, "7"),
    ),
]


class TestReadPaths:
    """The single-pass reads of the common getters find exactly what their getter finds name by name."""

    @pytest.mark.parametrize("carrier", PLAIN_CARRIERS)
    def test_plain_dict(self, carrier: dict[str, Any]) -> None:
        fast = current_session(propagator().extract(carrier))
        assert fast == current_session(propagator().extract(carrier, getter=_DefaultByName()))
        assert fast == current_session(propagator().extract(MappingProxyType(carrier)))  # not a dict: by name

    @pytest.mark.parametrize("carrier", PLAIN_CARRIERS[:5])
    def test_asgi_scope(self, carrier: dict[str, Any]) -> None:
        for encode in (lambda name: name.encode("latin-1"), lambda name: name.encode("latin-1").lower()):
            headers = [(encode(name), str(value).encode("latin-1")) for name, value in carrier.items()]
            scope = {"type": "http", "headers": headers}
            fast = current_session(propagator().extract(scope, getter=asgi_getter))
            assert fast == current_session(propagator().extract(scope, getter=_NameByName(asgi_getter)))
        if carrier:
            assert fast is not None or "traceparent" in carrier  # every session header spelling is found

    @pytest.mark.parametrize(("carrier", "expected"), TWO_SPELLINGS)
    def test_two_spellings_first_configured_wins(self, carrier: dict[str, str], expected: Session) -> None:
        """A request with both token spellings (and both id names): the value of the name configured first,
        whatever the order of the request's headers, on every read path and as the getter finds it by name."""
        p = propagator(session_id_headers=["openReplaySession.id", "X-OpenReplay-Session-Id"])
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in carrier.items()]
        scope = {"type": "http", "headers": headers}
        environ = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in carrier.items()}
        for reversed_order in (False, True):
            if reversed_order:
                scope = {"type": "http", "headers": headers[::-1]}
            assert current_session(p.extract(scope, getter=asgi_getter)) == expected
            assert current_session(p.extract(scope, getter=_NameByName(asgi_getter))) == expected
        assert current_session(p.extract(environ, getter=wsgi_getter)) == expected
        assert current_session(p.extract(environ, getter=_NameByName(wsgi_getter))) == expected
        assert current_session(p.extract(carrier)) == expected  # a plain dict, as sent
        assert current_session(p.extract(carrier, getter=_DefaultByName())) == expected
        assert current_session(p.extract(dict(reversed(carrier.items())))) == expected

    @pytest.mark.parametrize("carrier", PLAIN_CARRIERS[:5])
    def test_wsgi_environ(self, carrier: dict[str, Any]) -> None:
        environ = {"REQUEST_METHOD": "GET"} | {
            "HTTP_" + name.upper().replace("-", "_"): str(value) for name, value in carrier.items()
        }
        fast = current_session(propagator().extract(environ, getter=wsgi_getter))
        assert fast == current_session(propagator().extract(environ, getter=_NameByName(wsgi_getter)))
        if carrier:
            assert fast is not None or "traceparent" in carrier


class TestExtractAsgiScope:
    """The entry hooks' read of an ASGI scope: what ``extract`` with the ASGI getter gives, without that getter."""

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"x-openreplay-sessiontoken", TOKEN.encode())],
            [(b"openreplaysession.id", b"77"), (b"x-openreplay-session-token", TOKEN.encode())],
            [(b"x-openreplay-sessiontoken", b"x] [openReplaySessionToken=forged")],
            [(b"accept", b"*/*")],
            [],
        ],
    )
    def test_same_session_as_the_asgi_getter(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Every scope gives the session extract() finds through the ASGI instrumentation's getter."""
        scope = {"type": "http", "headers": headers}
        ours = propagator()
        assert current_session(ours.extract_asgi_scope(scope)) == current_session(
            ours.extract(scope, getter=asgi_getter)
        )

    def test_no_header_returns_the_context_given(self) -> None:
        """Without a session header the given context comes back as is: the hook attaches nothing."""
        given = baggage.set_baggage("other", "1")
        assert propagator().extract_asgi_scope({"type": "http", "headers": []}, given) is given

    def test_not_a_scope(self) -> None:
        """Anything but a dict is no session, never an error."""
        assert current_session(propagator().extract_asgi_scope(None)) is None
