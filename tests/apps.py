"""The example apps as real processes: a real server under ``opentelemetry-instrument``.

Flask and Django run in gunicorn (a WSGI server), FastAPI in uvicorn, the Celery example in a real
``celery worker`` (:class:`Worker`). Tests read what the app's
console exporter printed (one JSON object per log record or span) or what reached the collector.
This module must never import the apps: they run in their own processes, as users run them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from tests.stack.process import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SERVERS: dict[str, list[str]] = {
    "flask": ["gunicorn", "--workers", "1", "--threads", "4", "examples.flask_app:app"],
    "django": ["gunicorn", "--workers", "1", "--threads", "4", "examples.django_shop.wsgi"],
    "fastapi": ["uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1"],
    "django-asgi": ["uvicorn", "examples.django_shop.asgi:application", "--host", "127.0.0.1"],
    "starlette": ["uvicorn", "examples.starlette_app:app", "--host", "127.0.0.1"],
    "aiohttp": ["python", "-m", "aiohttp.web", "-H", "127.0.0.1", "examples.aiohttp_app:make_app"],
    "falcon": ["gunicorn", "--workers", "1", "--threads", "4", "examples.falcon_app:app"],
    "pyramid": ["gunicorn", "--workers", "1", "--threads", "4", "examples.pyramid_app:app"],
    "tornado": ["python", "-m", "examples.tornado_app"],
}
"""How each example is served: the command after ``opentelemetry-instrument``, without its port."""

SETTINGS = {"django": "examples.django_shop.settings", "django-asgi": "examples.django_shop.asgi_settings"}
"""``DJANGO_SETTINGS_MODULE`` of the Django examples."""


def prefixed_by(session_id: str) -> Any:
    """Matches the ERROR records (what reaches OpenReplay) of one session, as the console exporter printed them."""
    return lambda record: (
        record["severity_number"] >= 17
        and isinstance(record["body"], str)
        and f"[openReplaySession.id={session_id}] " in record["body"]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """One example app served by a real server under ``opentelemetry-instrument``."""

    def __init__(self, kind: str, env: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix=f"otelor-{kind}-"))
        self.stdout_path = self._dir / "stdout"
        self.stderr_path = self._dir / "stderr"
        self.env = {
            **os.environ,
            "OTEL_SERVICE_NAME": f"{kind}-shop",
            "OTEL_LOGS_EXPORTER": "console",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PYTHONUNBUFFERED": "1",
            **({"DJANGO_SETTINGS_MODULE": SETTINGS[kind]} if kind in SETTINGS else {}),
            **(env or {}),
        }
        self._process = ServiceProcess(f"the {kind} app", self.stderr_path)

    def command(self) -> list[str]:
        server = SERVERS[self.kind]
        if server[0] == "python":  # a server started as a module: aiohttp's -P, the Tornado example's --port
            port = ["-P", str(self.port)] if server[2] == "aiohttp.web" else ["--port", str(self.port)]
            return [str(BIN / "opentelemetry-instrument"), str(BIN / "python"), *server[1:], *port]
        bind = ["--port", str(self.port)] if server[0] == "uvicorn" else ["--bind", f"127.0.0.1:{self.port}"]
        return [str(BIN / "opentelemetry-instrument"), str(BIN / server[0]), *server[1:], *bind]

    def start(self, timeout: float = 30) -> App:
        """Start the server in its own process group; return once ``/health`` answers (RuntimeError if not)."""
        self._process.start(self.command(), env=self.env, cwd=ROOT, stdout=self.stdout_path)
        self._process.wait_ready(self._healthy, timeout, RuntimeError, interval=0.1)
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    def get(self, path: str, headers: Mapping[str, str] | None = None, **params: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=dict(headers or {}), params=params, timeout=10)

    def post(self, path: str, headers: Mapping[str, str] | None = None, **params: str) -> requests.Response:
        return requests.post(f"{self.url}{path}", headers=dict(headers or {}), params=params, timeout=10)

    def stop(self) -> None:
        """SIGTERM the server's whole process group (its workers too), SIGKILL after 15 s."""
        self._process.stop(15)

    def stderr_tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])

    def objects(self) -> list[dict[str, Any]]:
        """Every JSON object the console exporters printed so far, in order."""
        text = self.stdout_path.read_text(errors="replace")
        decoder = json.JSONDecoder()
        found: list[dict[str, Any]] = []
        index = text.find("{")
        while index != -1:
            try:
                obj, end = decoder.raw_decode(text, index)
            except json.JSONDecodeError:
                index = text.find("{", index + 1)
                continue
            if isinstance(obj, dict):
                found.append(obj)
            index = text.find("{", end)
        return found

    def logs(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects() if "severity_number" in obj]

    def spans(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects() if "kind" in obj and "context" in obj]

    def wait_for_log(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        found = self._wait_for(self.logs, predicate, timeout)
        if found is None:
            bodies = [record.get("body") for record in self.logs()]
            raise AssertionError(f"no matching log record in {self.kind} app; got bodies {bodies}")
        return found

    def wait_for_span(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        found = self._wait_for(self.spans, predicate, timeout)
        if found is None:
            raise AssertionError(f"no matching span in {self.kind} app; got {[s.get('name') for s in self.spans()]}")
        return found

    @staticmethod
    def _wait_for(read: Any, predicate: Any, timeout: float) -> dict[str, Any] | None:
        """Poll what the console exporter printed: spans end, and batches export, after the response."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in read():
                if predicate(item):
                    return item
            time.sleep(0.1)
        return None

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Worker:
    """The Celery example (``examples/celery_app.py``) in a real worker under ``opentelemetry-instrument``.

    ``pool`` is Celery's ``--pool`` (``solo``, ``prefork``, ``threads``, ``gevent``); ``env`` must name the
    broker (``CELERY_BROKER_URL``) and the exporters; ``args`` are more ``celery worker`` options. Celery's
    own console output (its stderr) is kept in a file.
    """

    READY = " ready."
    """What Celery prints once the process is ready."""

    def __init__(self, pool: str, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        self.pool = pool
        self.args = list(args)
        self._dir = Path(tempfile.mkdtemp(prefix=f"otelor-celery-{pool}-"))
        self.stderr_path = self._dir / "stderr"
        self.env = {
            **os.environ,
            "OTEL_SERVICE_NAME": "shop-worker",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self._process = ServiceProcess(f"celery worker ({pool})", self.stderr_path)

    def command(self) -> list[str]:
        return [
            str(BIN / "opentelemetry-instrument"),
            str(BIN / "celery"),
            "-A", "examples.celery_app.celery_app",
            "worker", "--pool", self.pool, "--concurrency", "2", "--loglevel", "INFO", *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 60) -> Worker:
        """Start the worker in its own process group; return once Celery says `` ready.`` (RuntimeError if not)."""
        self._process.start(self.command(), env=self.env, cwd=ROOT)
        self._process.wait_ready(lambda: self.READY in self.console(), timeout, RuntimeError, interval=0.1)
        return self

    def console(self) -> str:
        """What Celery printed so far (its own log handler writes to stderr)."""
        return self.stderr_path.read_text(errors="replace")

    def wait_for_console(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.console():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the {self.pool} worker's output: {self.stderr_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process), as a deploy stops a worker; SIGKILL after 30 s. Then
        anything left of its process group (prefork children) is killed: nothing outlives the test."""
        self._process.stop(30, leader_only=True)

    def stderr_tail(self, lines: int = 30) -> str:
        return "\n".join(self.console().splitlines()[-lines:])

    def __enter__(self) -> Worker:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Beat(Worker):
    """``celery beat`` for the Celery example, under ``opentelemetry-instrument``, with its schedule file in a
    temporary directory (never the checkout). ``env`` as for :class:`Worker`; its ``pool`` is ``"beat"``."""

    READY = "beat: Starting..."

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = ()) -> None:
        super().__init__("beat", {"OTEL_SERVICE_NAME": "shop-beat", **env}, args)

    def command(self) -> list[str]:
        return [
            str(BIN / "opentelemetry-instrument"),
            str(BIN / "celery"),
            "-A", "examples.celery_app.celery_app",
            "beat", "--loglevel", "INFO", "--schedule", str(self._dir / "celerybeat-schedule"), *self.args,
        ]  # fmt: skip
