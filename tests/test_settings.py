"""Settings: each one an env var and a keyword, defaults stated once, bad values named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_openreplay import settings as settings_module
from otel_openreplay.connection import SPECS as CONNECTION_SPECS
from otel_openreplay.settings import SPECS, Settings, SettingsError, Spec

README = Path(__file__).resolve().parents[1] / "README.md"


class TestSettings:
    def test_defaults(self) -> None:
        """With a clean environment every default applies."""
        s = Settings.from_env({})
        assert s.token_headers == ("X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token")
        assert s.session_id_headers == ("openReplaySession.id",)
        assert s.prefix == ("token", "id")
        assert s.propagate is True
        assert s.capture_exceptions is True
        assert s.span_attributes is True

    def test_env_and_keyword(self) -> None:
        """Variables are read; a keyword wins over its variable."""
        env = {"OTEL_OPENREPLAY_PROPAGATE": "false", "OTEL_OPENREPLAY_PREFIX": "id"}
        assert Settings.from_env(env).propagate is False
        assert Settings.from_env(env).prefix == ("id",)
        assert Settings.from_env(env, propagate=True, prefix=["token"]).prefix == ("token",)
        assert Settings.from_env(env, propagate=True).propagate is True

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            (
                {"OTEL_OPENREPLAY_PROPAGATE": "maybe"},
                "OTEL_OPENREPLAY_PROPAGATE='maybe': expected true or false",
            ),
            ({"OTEL_OPENREPLAY_PREFIX": "token,session"}, "unknown part 'session'"),
            (
                {"OTEL_OPENREPLAY_TOKEN_HEADERS": "X Bad"},
                "OTEL_OPENREPLAY_TOKEN_HEADERS: 'X Bad' is not a valid",
            ),
        ],
    )
    def test_bad_values_name_the_variable(self, env: dict[str, str], message: str) -> None:
        """A bad value fails at start-up with the variable and what is expected."""
        with pytest.raises(SettingsError, match=re.escape(message)):
            Settings.from_env(env)

    def test_unknown_keyword(self) -> None:
        """A misspelt keyword is an error, not silently ignored."""
        with pytest.raises(SettingsError, match="unknown setting 'propagte'"):
            Settings.from_env({}, propagte=False)

    def test_each_spec_has_a_module_constant(self) -> None:
        """opentelemetry-instrument gets a --flag per OTEL_OPENREPLAY_* constant of the module."""
        constants = {name for name in dir(settings_module) if name.startswith("OTEL_OPENREPLAY_")}
        assert constants == {spec.env for spec in SPECS}

    @pytest.mark.parametrize("spec", [*SPECS, *CONNECTION_SPECS], ids=lambda spec: spec.env)
    def test_readme_table_matches_the_code(self, spec: Spec) -> None:
        """The README's one settings table lists each setting with the code's keyword and default."""
        row = re.search(rf"^\| `{spec.env}` \| `{spec.keyword}` \| (`[^`]*`|—) \|", README.read_text(), re.MULTILINE)
        assert row, f"{spec.env} missing from the README table"
        assert row.group(1) == (f"`{spec.default}`" if spec.default else "—")


class TestCollectorVariables:
    def test_every_collector_variable_is_in_the_readme_table_with_its_default(self) -> None:
        """Each `${env:OPENREPLAY_*:-default}` of the drop-in config is a README table row with that default."""
        config = (README.parent / "collector" / "otelcol-openreplay.yaml").read_text()
        table = README.read_text()
        references = set(re.findall(r"\$\{env:(OPENREPLAY_[A-Z_]+)(?::-([^}]*))?\}", config))
        assert {name for name, _ in references} >= {
            "OPENREPLAY_ES_URL",
            "OPENREPLAY_ES_API_KEY",
            "OPENREPLAY_QUEUE_DIR",
        }
        for name, default in references:
            row = re.search(rf"^\| `{name}` \| [^|]+ \| (`[^`]*`|—) \|", table, re.MULTILINE)
            assert row, f"{name} missing from the README table"
            if name == "OPENREPLAY_ES_URL":
                assert default == ""  # required in the collector, as the table says
            else:
                assert row.group(1) == (f"`{default}`" if default else "—"), name
