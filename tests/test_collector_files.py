"""`otel-openreplay collector config|manifest`: the drop-in's files, as installed, written out unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_openreplay import cli, collector_files

ROOT = Path(__file__).resolve().parents[1]


class TestCollectorFiles:
    @pytest.mark.parametrize(
        ("what", "name"), [("config", "otelcol-openreplay.yaml"), ("manifest", "builder-config.yaml")]
    )
    def test_the_package_reads_the_repository_file(self, what: str, name: str) -> None:
        """The installed package serves collector/<file> itself, byte for byte (one source, no copy)."""
        assert collector_files.FILES[what] == name
        assert collector_files.read(what) == (ROOT / "collector" / name).read_text(encoding="utf-8")

    def test_unknown_file(self) -> None:
        """Only the two shipped files can be read."""
        with pytest.raises(KeyError):
            collector_files.read("build.sh")


class TestCollectorCommand:
    @pytest.mark.parametrize("what", ["config", "manifest"])
    def test_stdout(self, what: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Without -o the file goes to stdout and nothing else does."""
        assert cli.main(["collector", what]) == 0
        out, err = capsys.readouterr()
        assert out == collector_files.read(what)
        assert err == ""

    def test_output_file_replaced(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """-o FILE writes (replacing an old copy) and says so on stderr, leaving stdout empty."""
        target = tmp_path / "otelcol-openreplay.yaml"
        target.write_text("old", encoding="utf-8")
        assert cli.main(["collector", "config", "-o", str(target)]) == 0
        assert target.read_text(encoding="utf-8") == collector_files.read("config")
        out, err = capsys.readouterr()
        assert out == ""
        assert str(target) in err

    def test_unwritable_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A path that cannot be written is a usage error naming the path, without a traceback."""
        missing = tmp_path / "no-such-dir" / "config.yaml"
        assert cli.main(["collector", "config", "-o", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ERROR: cannot write {missing}")
        assert "Traceback" not in err

    def test_which_file_is_required(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`collector` alone is a usage error."""
        assert cli.main(["collector"]) == 2
        assert "FILE" in capsys.readouterr().err
