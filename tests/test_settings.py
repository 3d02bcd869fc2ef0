"""Settings: each one an env var and a keyword, defaults stated once, bad values named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

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
        row = table_rows()[spec.env]
        assert row.keyword == f"`{spec.keyword}`"
        assert row.default == (f"`{spec.default}`" if spec.default else "—")


# --- the README's settings table --------------------------------------------------------------------

CONFIG = README.parent / "collector" / "otelcol-openreplay.yaml"
PACKAGE = README.parent / "otel_openreplay"
ROW = re.compile(r"^\| `((?:OTEL_)?OPENREPLAY_[A-Z_]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|", re.MULTILINE)


class Row(NamedTuple):
    keyword: str
    default: str
    read_by: frozenset[str]


def table_rows() -> dict[str, Row]:
    """Each row of the table by variable (a name listed twice fails the test that reads it)."""
    rows = [
        (name, Row(keyword.strip(), default.strip(), frozenset(part.strip() for part in read_by.split(","))))
        for name, keyword, default, read_by in ROW.findall(README.read_text())
    ]
    return dict(rows)


def collector_references() -> dict[str, str | None]:
    """Every ``${env:NAME`` of the drop-in config (comments aside), with its ``:-default`` (``None``: required)."""
    text = "\n".join(line for line in CONFIG.read_text().splitlines() if not line.lstrip().startswith("#"))
    found = re.findall(r"\$\{env:([A-Za-z0-9_]+)(:-[^}]*)?\}", text)
    return {name: (default[2:] if default else None) for name, default in found}


def expected_readers(name: str) -> frozenset[str]:
    """Who reads ``name``, from the code: the app (settings.SPECS), the exporter and CLI (connection.SPECS,
    or any variable the exporter and the CLI name), the collector (its config)."""
    readers = set()
    if name in {spec.env for spec in SPECS}:
        readers.add("app")
    constant = name.lower().removeprefix("otel_openreplay_")
    exporter_text = (PACKAGE / "exporter.py").read_text()
    cli_text = "".join(path.read_text() for path in (PACKAGE / "cli").glob("*.py"))
    if name in {spec.env for spec in CONNECTION_SPECS} or constant in exporter_text:
        readers.add("exporter")
    if name in {spec.env for spec in CONNECTION_SPECS} or name in cli_text or constant in cli_text:
        readers.add("CLI")
    if name in collector_references():
        readers.add("collector")
    return frozenset(readers)


class TestReadmeTable:
    def test_each_variable_is_listed_exactly_once(self) -> None:
        names = ROW.findall(README.read_text())
        counts = {name: sum(1 for other, *_ in names if other == name) for name, *_ in names}
        assert {name: count for name, count in counts.items() if count != 1} == {}

    def test_every_setting_and_every_collector_variable_has_a_row(self) -> None:
        """The code's settings and every ``${env:`` of the collector config (OTEL_OPENREPLAY_* too), no more."""
        wanted = {spec.env for spec in (*SPECS, *CONNECTION_SPECS)} | set(collector_references())
        assert set(table_rows()) == wanted

    def test_read_by_says_who_reads_each(self) -> None:
        """The "Read by" column: app, exporter, CLI and collector exactly where the code and config read it."""
        wrong = {
            name: (sorted(row.read_by), sorted(expected_readers(name)))
            for name, row in table_rows().items()
            if row.read_by != expected_readers(name)
        }
        assert wrong == {}


class TestCollectorVariables:
    def test_every_collector_variable_is_in_the_readme_table_with_its_default(self) -> None:
        """Each `${env:NAME:-default}` of the drop-in config is a README table row with that default."""
        references = collector_references()
        assert {
            "OPENREPLAY_ES_URL",
            "OPENREPLAY_ES_API_KEY",
            "OPENREPLAY_QUEUE_DIR",
            "OTEL_OPENREPLAY_REPLAY_URL",
        } <= set(references)
        rows = table_rows()
        for name, default in references.items():
            assert name in rows, f"{name} missing from the README table"
            if name == "OPENREPLAY_ES_URL":
                assert default is None  # required in the collector, as the table says
            elif name.startswith("OTEL_OPENREPLAY_"):
                assert default == "", name  # the package's own variable: unset means off in both
            else:
                assert rows[name].default == (f"`{default}`" if default else "—"), name
