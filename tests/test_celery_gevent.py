"""celery_gevent: a gevent worker patched after Kombu was imported is found, and the ERROR names the fix.

The check itself runs on stand-in modules here; the real order of imports (Kombu, then gevent's
``patch_all()``, as Celery's ``main()`` does under ``opentelemetry-instrument``, and the reverse, as
OpenTelemetry's gevent setting does) runs in a fresh interpreter. The worker that hangs without the
setting, and runs with it, is in tests/test_celery_e2e.py.
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import signals

from otel_openreplay import celery_logging
from otel_openreplay.celery_gevent import (
    GEVENT_PATCH_ENV,
    LATE_PATCH_MESSAGE,
    kombu_selects_unpatched,
    warn_if_patched_late,
)


def original_select(*_: Any) -> None:
    """Stands for the blocking ``select.select``."""


def green_select(*_: Any) -> None:
    """Stands for gevent's cooperative ``select``."""


def modules(*, patched: bool = True, kombu_kept: Any = original_select, **overrides: Any) -> dict[str, Any]:
    """``sys.modules`` as the check reads it: gevent's monkey, Kombu's eventio and ``select``."""
    loaded: dict[str, Any] = {
        "gevent.monkey": SimpleNamespace(is_module_patched=lambda name: patched and name == "select"),
        "kombu.utils.eventio": SimpleNamespace(_selectf=kombu_kept),
        "select": SimpleNamespace(select=green_select if patched else original_select),
    }
    loaded.update(overrides)
    return loaded


class TestKombuSelectsUnpatched:
    def test_patched_after_kombu(self) -> None:
        """gevent patched ``select`` after Kombu took the original: the hazard."""
        assert kombu_selects_unpatched(modules()) is True

    def test_patched_before_kombu(self) -> None:
        """Kombu took gevent's ``select`` (patched first, as OpenTelemetry's setting does): no hazard."""
        assert kombu_selects_unpatched(modules(kombu_kept=green_select)) is False

    def test_gevent_not_patching(self) -> None:
        """gevent imported but ``select`` not patched (another pool): no hazard."""
        assert kombu_selects_unpatched(modules(patched=False)) is False

    @pytest.mark.parametrize("missing", ["gevent.monkey", "kombu.utils.eventio", "select"])
    def test_a_module_not_loaded(self, missing: str) -> None:
        """Without gevent, Kombu's event loop or ``select`` loaded, there is nothing to report."""
        loaded = modules()
        del loaded[missing]
        assert kombu_selects_unpatched(loaded) is False

    def test_another_kombu_layout(self) -> None:
        """A Kombu whose event loop keeps no ``_selectf``: unknown is not reported as a hazard."""
        assert kombu_selects_unpatched(modules(**{"kombu.utils.eventio": SimpleNamespace()})) is False


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("import kombu.utils.eventio\nfrom gevent import monkey\nmonkey.patch_all()", "True"),
        ("from gevent import monkey\nmonkey.patch_all()\nimport kombu.utils.eventio", "False"),
        ("import kombu.utils.eventio", "False"),
    ],
    ids=["celery-patches-late", "patched-first", "no-gevent"],
)
def test_real_gevent_and_kombu(order: str, expected: str) -> None:
    """The real modules, imported in each order, in a fresh interpreter (patching this one would break it)."""
    code = (
        f"{order}\nfrom otel_openreplay.celery_gevent import kombu_selects_unpatched\nprint(kombu_selects_unpatched())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == expected


def pretend(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> None:
    """This process looks like a gevent worker, with this interpreter's real ``select`` module."""
    for name, module in modules(**overrides).items():
        if name != "select":
            monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture
def hazard(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process looks like a gevent worker patched too late: Kombu holds another ``select()``."""
    pretend(monkeypatch)


class TestWarning:
    def test_names_the_setting(self, hazard: None, caplog: pytest.LogCaptureFixture) -> None:
        """One ERROR naming OpenTelemetry's gevent setting and the value that fixes it."""
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_gevent"):
            warn_if_patched_late(sender="celery@host", instance=None, conf=None)
        (report,) = caplog.records
        assert report.levelno == logging.ERROR
        assert report.getMessage() == LATE_PATCH_MESSAGE
        assert f"{GEVENT_PATCH_ENV}=patch_all" in LATE_PATCH_MESSAGE

    def test_sent_by_celery_after_the_worker_set_logging_up(
        self, hazard: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """install() connects the check to ``celeryd_after_setup``; a disconnected hook says nothing."""
        unhook = celery_logging.install()
        assert unhook is not None
        try:
            with caplog.at_level(logging.ERROR, logger="otel_openreplay.celery_gevent"):
                signals.celeryd_after_setup.send(sender="celery@host", instance=None, conf=None)
        finally:
            unhook()
        assert [r.getMessage() for r in caplog.records] == [LATE_PATCH_MESSAGE]
        caplog.clear()
        signals.celeryd_after_setup.send(sender="celery@host", instance=None, conf=None)
        assert caplog.records == []

    def test_no_hazard_no_word(self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
        """A worker patched in time (or not gevent at all) logs nothing."""
        pretend(monkeypatch, kombu_kept=select.select)
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_gevent"):
            warn_if_patched_late()
        assert caplog.records == []

    def test_never_raises(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """A gevent whose check fails: logged at DEBUG with the cause, and Celery goes on."""

        def broken(name: str) -> bool:
            raise RuntimeError("no such module state")

        pretend(monkeypatch, **{"gevent.monkey": SimpleNamespace(is_module_patched=broken)})
        with caplog.at_level(logging.DEBUG, logger="otel_openreplay.celery_gevent"):
            warn_if_patched_late()
        (report,) = caplog.records
        assert report.levelno == logging.DEBUG
        assert report.exc_info is not None
        assert str(report.exc_info[1]) == "no such module state"


@pytest.fixture(autouse=True)
def _no_receiver_left() -> Iterator[None]:
    """No test leaves the check connected."""
    yield
    signals.celeryd_after_setup.disconnect(dispatch_uid="otel_openreplay.celery_logging")
