"""The session value: validation, id derivation, prefix rule, context storage."""

from __future__ import annotations

import importlib
import logging

import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from otel_openreplay import configure
from otel_openreplay.session import (
    Session,
    apply_prefix,
    current_session,
    prefix_for,
    remembered,
    session,
    session_id_from_token,
    valid_session_id,
    valid_token,
    with_session,
)
from tests.conftest import TOKEN, TOKEN_SESSION_ID


class TestValidation:
    @pytest.mark.parametrize("value", [TOKEN, "a", "A.b-c_d", "x" * 256, "-1b.2"])
    def test_accepts_tokens_of_the_allowed_alphabet(self, value: str) -> None:
        """Tokens of [0-9A-Za-z._-], 1-256 chars, are kept as they are."""
        assert valid_token(value) == value

    @pytest.mark.parametrize(
        "value", ["", "x" * 257, "a b", "a]b", "a\r\nb", "tok=1", "é", " a", "a\n", None, 12, b"abc"]
    )
    def test_rejects_anything_else(self, value: object) -> None:
        """Anything that could break or forge a prefix is not a token."""
        assert valid_token(value) is None

    @pytest.mark.parametrize("value", ["0", "7297413432396165", "9" * 20])
    def test_accepts_session_ids_of_1_to_20_digits(self, value: str) -> None:
        """A decimal id of 1-20 digits is a session id."""
        assert valid_session_id(value) == value

    @pytest.mark.parametrize("value", ["", "1" * 21, "12a", "-1", "1.0", " 1", True, -1])
    def test_rejects_other_ids(self, value: object) -> None:
        """Non-digits, signs and over-long ids are dropped."""
        assert valid_session_id(value) is None

    def test_int_ids_are_accepted(self) -> None:
        """An int id (what a worker may hold) is written in decimal."""
        assert valid_session_id(7297413432396165) == "7297413432396165"


class TestDerivation:
    def test_id_is_the_base36_first_segment(self) -> None:
        """The token's first segment, read as base36, is the session id."""
        assert session_id_from_token(TOKEN) == TOKEN_SESSION_ID

    @pytest.mark.parametrize("token", ["-abc.1", "a_b.1", "1+2.3", "zzzzzzzzzzzzzz.1"])
    def test_no_id_from_a_segment_that_is_not_plain_base36(self, token: str) -> None:
        """Signs, underscores (which int() would accept) and overflowing values give no id."""
        assert session_id_from_token(token) is None

    def test_session_of_derives_the_id_when_none_is_given(self) -> None:
        """A token alone is enough for both prefix parts."""
        assert Session.of(TOKEN) == Session(TOKEN, TOKEN_SESSION_ID)

    def test_an_explicit_id_wins(self) -> None:
        """The id header, when given, is used as is."""
        assert Session.of(TOKEN, "42") == Session(TOKEN, "42")

    def test_nothing_valid_is_no_session(self) -> None:
        """Invalid values everywhere give None, never an exception."""
        assert Session.of("bad token", "x") is None


class TestPrefix:
    SESSION = Session(TOKEN, TOKEN_SESSION_ID)
    FULL = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={TOKEN_SESSION_ID}] "

    def test_prefix_has_both_parts_in_order(self) -> None:
        """The contract's prefix: token part, then id part, each followed by one space."""
        assert prefix_for(self.SESSION) == self.FULL

    def test_prefix_has_only_known_or_wanted_parts(self) -> None:
        """A part is written only for a known value that is wanted."""
        assert prefix_for(Session(None, "5")) == "[openReplaySession.id=5] "
        assert prefix_for(self.SESSION, session_id=False) == f"[openReplaySessionToken={TOKEN}] "

    def test_never_twice(self) -> None:
        """Applying the prefix to a prefixed message changes nothing."""
        once = apply_prefix("boom", self.FULL)
        assert apply_prefix(once, self.FULL) == once == self.FULL + "boom"

    def test_partial_prefix_is_completed_once(self) -> None:
        """A message that carries only the token part gets the id part, not a second token part."""
        partial = f"[openReplaySessionToken={TOKEN}] boom"
        assert apply_prefix(partial, self.FULL) == self.FULL + "boom"
        only_id = f"[openReplaySession.id={TOKEN_SESSION_ID}] boom"
        assert apply_prefix(only_id, self.FULL) == self.FULL + "boom"

    def test_a_different_leading_token_is_kept_behind_ours(self) -> None:
        """Text that merely looks like a prefix (another value) is message content, never removed."""
        other = "[openReplaySessionToken=other] boom"
        assert apply_prefix(other, self.FULL) == self.FULL + other


class TestContext:
    def test_with_session_propagating_puts_it_in_baggage(self) -> None:
        """propagate=True: baggage carries both keys, so W3C baggage takes them downstream."""
        ctx = with_session(Session(TOKEN, "5"), propagate=True)
        assert baggage.get_all(ctx) == {"openReplaySessionToken": TOKEN, "openReplaySession.id": "5"}
        assert current_session(ctx) == Session(TOKEN, "5")

    def test_local_session_is_not_in_baggage(self) -> None:
        """propagate=False: the session is found, but no baggage entry exists to send on."""
        ctx = baggage.set_baggage("openReplaySessionToken", "from-client")
        ctx = with_session(Session(TOKEN, "5"), ctx, propagate=False)
        assert dict(baggage.get_all(ctx)) == {}
        assert current_session(ctx) == Session(TOKEN, "5")

    def test_baggage_values_are_validated(self) -> None:
        """A hostile value that came in a W3C baggage header is not a session."""
        ctx = baggage.set_baggage("openReplaySessionToken", "x] [openReplaySessionToken=forged")
        assert current_session(ctx) is None

    def test_session_block_makes_it_current_and_restores(self) -> None:
        """Inside `with session(...)` it is current; after, the previous context is back."""
        with session(token=TOKEN) as found:
            assert current_session() == found == Session(TOKEN, TOKEN_SESSION_ID)
        assert current_session() is None

    def test_session_block_with_bad_values_runs_without_session(self) -> None:
        """Invalid values give a block without a session and yield None."""
        with session(token="not a token") as found:
            assert found is None
            assert current_session() is None

    def test_exception_leaving_the_block_remembers_the_session(self) -> None:
        """An error that escapes still knows its session, for whoever logs it later."""
        with pytest.raises(ValueError, match="late") as caught, session(session_id=77):
            raise ValueError("late")
        assert remembered(caught.value) == Session(None, "77")

    def test_session_block_follows_configure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(propagate=False) keeps a job's session out of baggage too; after undo, the variable rules."""
        monkeypatch.delenv("OTEL_OPENREPLAY_PROPAGATE", raising=False)
        provider = LoggerProvider(shutdown_on_exit=False)
        wiring = configure(
            logger_provider=provider, tracer_provider=TracerProvider(), capture_exceptions=False, propagate=False
        )
        try:
            with session(token=TOKEN) as found:
                assert dict(baggage.get_all()) == {}
                assert current_session() == found
        finally:
            wiring.undo()
            provider.shutdown()
        with session(token=TOKEN):
            assert baggage.get_all()["openReplaySessionToken"] == TOKEN

    def test_session_block_with_a_bad_variable_stays_in_the_process(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A bad OTEL_OPENREPLAY_* value never raises into the job: one ERROR naming the variable, and the
        session tags the block without leaving the process (propagate=False, the privacy-safe choice)."""
        monkeypatch.setattr(importlib.import_module("otel_openreplay.session"), "_reported_bad_env", [])
        monkeypatch.setenv("OTEL_OPENREPLAY_PROPAGATE", "perhaps")
        monkeypatch.setenv("OTEL_OPENREPLAY_PREFIX", "everything")  # a bad value of another setting: not read here
        with caplog.at_level(logging.ERROR, logger="otel_openreplay"):
            for _ in range(3):
                with session(token=TOKEN) as found:
                    assert current_session() == found == Session(TOKEN, TOKEN_SESSION_ID)
                    assert dict(baggage.get_all()) == {}
        errors = [record for record in caplog.records if record.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "OTEL_OPENREPLAY_PROPAGATE='perhaps'" in errors[0].getMessage()

    def test_session_block_respects_propagate_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_OPENREPLAY_PROPAGATE=false keeps a job's session out of baggage."""
        monkeypatch.setenv("OTEL_OPENREPLAY_PROPAGATE", "false")
        with session(token=TOKEN):
            assert dict(baggage.get_all()) == {}
            assert current_session() is not None
        assert context.get_current() is not None
