"""The project's OpenTelemetry Collector for tests, demo and benchmarks: build it, validate configs, run it.

:func:`build` runs ``collector/build.sh`` (the minimal ``otelcol-openreplay`` distribution, cached by the
manifest's hash) and returns the binary. :class:`Collector` runs it with ``collector/otelcol-openreplay.yaml``
(plus optional overlay configs) on free loopback ports, with its persistent queue in a private directory
that survives :meth:`Collector.restart` and :meth:`Collector.kill`. :func:`validate` runs
``otelcol validate``. :func:`cli` is ``python -m tests.stack collector build|validate``.

What it must never do: listen on anything but 127.0.0.1; use a queue directory it did not create (never
the config's default under /var/lib); pass the caller's own ``OPENREPLAY_*`` / ``ELASTICSEARCH_URL`` /
``OTEL_OPENREPLAY_REPLAY_URL`` variables to the collector (only the env it is given); print or log a password
or API key; signal a process it did not start. It is test tooling: nothing under ``otel_openreplay`` may import it.

Typical use::

    with Collector(env={"OPENREPLAY_ES_URL": node.url, "OPENREPLAY_ES_USER": "writer", ...}) as col:
        exporter = OTLPLogExporter(endpoint=col.grpc_endpoint, insecure=True)   # or col.http_logs_url
        ...
        col.kill(); col.start(); col.wait_ready()                                # queue dir kept
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.stack.process import LOOPBACK as _LOOPBACK
from tests.stack.process import ManagedService, ServiceProcess, free_ports

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO / "collector"
BUILD_SCRIPT = COLLECTOR_DIR / "build.sh"
MANIFEST = COLLECTOR_DIR / "builder-config.yaml"
CONFIG = COLLECTOR_DIR / "otelcol-openreplay.yaml"
"""The drop-in config users run."""
DEBUG_OVERLAY = REPO / "tests" / "fixtures" / "collector" / "debug-exporter.yaml"
"""Overlay for :data:`CONFIG`: documents go to the debug exporter (the collector's log) instead of ES."""

_LEAKY_ENV = re.compile(r"^(OPENREPLAY_|OTEL_OPENREPLAY_REPLAY_URL$|ELASTICSEARCH_URL$)")
"""Caller variables never passed through: they would silently change what the config does."""
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
_SECRET_NAMES = re.compile(r"PASSWORD|API_KEY|SECRET|TOKEN", re.IGNORECASE)

PathLike = str | os.PathLike[str]


class CollectorError(RuntimeError):
    """The collector could not be built, did not start, or did not become ready (message has the log tail)."""


def _say(message: str) -> None:
    print(f"[collector] {message}", file=sys.stderr, flush=True)


# --- build ----------------------------------------------------------------------------------------


def build(*, quiet: bool = False, timeout: float = 1800.0) -> Path:
    """Build (or find in the cache) the ``otelcol-openreplay`` binary and return its absolute path.

    Runs ``collector/build.sh``; its progress goes to our stderr unless ``quiet`` (then it is kept for the
    error message). ``OTEL_OPENREPLAY_CACHE`` moves the cache.
    """
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        detail = _tail(result.stderr or "", 30) if quiet else "(see the build output above)"
        raise CollectorError(f"collector/build.sh failed with status {result.returncode}:\n{detail}")
    binary = Path(lines[-1])
    if not binary.is_absolute() or not os.access(binary, os.X_OK):
        raise CollectorError(f"collector/build.sh printed {binary!s}, which is not an executable absolute path")
    if time.monotonic() - started > 5:
        _say(f"built {binary} in {time.monotonic() - started:.0f} s")
    return binary


# --- validate -------------------------------------------------------------------------------------


def _configs(config: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(config, (str, os.PathLike)):
        return [Path(config)]
    return [Path(item) for item in config]


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """The process environment minus the caller's OPENREPLAY_* (and ELASTICSEARCH_URL, OTEL_OPENREPLAY_REPLAY_URL),
    plus ``env``."""
    clean = {name: value for name, value in os.environ.items() if not _LEAKY_ENV.match(name)}
    clean.update(env or {})
    return clean


def unset_references(config: PathLike | Sequence[PathLike], env: Mapping[str, str]) -> list[str]:
    """Variables the config(s) reference as ``${env:NAME}`` WITHOUT a default that ``env`` does not set.

    The collector expands those to nothing and, at best, fails later with a message about the field; this
    names the variable (a typo such as ``OPENREPLAY_ES_URLL`` shows up here).
    """
    missing: list[str] = []
    for path in _configs(config):
        for match in _ENV_REF.finditer(path.read_text()):
            name, default = match.group(1), match.group(2)
            if default is None and name not in env and name not in missing:
                missing.append(name)
    return missing


def validate(
    config: PathLike | Sequence[PathLike] = CONFIG,
    env: Mapping[str, str] | None = None,
    *,
    binary: Path | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``otelcol-openreplay validate --config …`` with exactly ``env`` (over a clean environment).

    Never raises for an invalid config: check ``returncode`` (0 = valid) and ``stderr`` (the reason).
    """
    command = [str(binary or build(quiet=True)), "validate"]
    for path in _configs(config):
        command += ["--config", str(path)]
    return subprocess.run(command, env=_child_env(env), capture_output=True, text=True, timeout=timeout, check=False)


# --- run ------------------------------------------------------------------------------------------


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Collector(ManagedService):
    """One ``otelcol-openreplay`` process on 127.0.0.1 with its own ports, queue directory and log file.

    ``config`` is the config path or a list of them (merged in order, as ``--config`` flags); ``env`` sets
    the variables the config reads (``OPENREPLAY_ES_URL``, auth, index…). The listen addresses
    (``OPENREPLAY_OTLP_GRPC_ENDPOINT``, ``OPENREPLAY_OTLP_HTTP_ENDPOINT``, ``OPENREPLAY_HEALTH_ENDPOINT``),
    ``OPENREPLAY_QUEUE_DIR`` and the log level are set by this class; ``env`` may override them. Ports and
    the queue directory are chosen once and kept across :meth:`restart`, :meth:`kill` + :meth:`start`.
    Everything lives in ``workdir`` (a fresh temp dir unless given), removed by :meth:`remove` only.
    """

    def __init__(
        self,
        config: PathLike | Sequence[PathLike] = CONFIG,
        env: Mapping[str, str] | None = None,
        *,
        binary: Path | None = None,
        workdir: Path | None = None,
        log_level: str = "info",
    ) -> None:
        self.configs = _configs(config)
        self.grpc_port, self.http_port, self.health_port = free_ports(3)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="otelor-collector-"))
        self.log_path = self.workdir / "collector.log"
        self.env: dict[str, str] = {
            "OPENREPLAY_OTLP_GRPC_ENDPOINT": f"{_LOOPBACK}:{self.grpc_port}",
            "OPENREPLAY_OTLP_HTTP_ENDPOINT": f"{_LOOPBACK}:{self.http_port}",
            "OPENREPLAY_HEALTH_ENDPOINT": f"{_LOOPBACK}:{self.health_port}",
            "OPENREPLAY_QUEUE_DIR": str(self.workdir / "queue"),
            "OPENREPLAY_LOG_LEVEL": log_level,
            **(env or {}),
        }
        self._binary = binary
        self._process = ServiceProcess("the collector", self.log_path)

    # -- addresses

    @property
    def grpc_endpoint(self) -> str:
        """``127.0.0.1:<port>`` for ``OTLPLogExporter(endpoint=…, insecure=True)`` (gRPC)."""
        return f"{_LOOPBACK}:{self.grpc_port}"

    @property
    def http_logs_url(self) -> str:
        """``http://127.0.0.1:<port>/v1/logs`` for the OTLP/HTTP log exporter."""
        return f"http://{_LOOPBACK}:{self.http_port}/v1/logs"

    @property
    def health_url(self) -> str:
        """The health_check extension's URL (200 once the pipeline runs)."""
        return f"http://{_LOOPBACK}:{self.health_port}/"

    @property
    def queue_dir(self) -> Path:
        """The persistent queue's directory (``OPENREPLAY_QUEUE_DIR``)."""
        return Path(self.env["OPENREPLAY_QUEUE_DIR"])

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    # -- lifecycle

    def start(self) -> None:
        """Launch the collector (building it first if needed); does not wait, see :meth:`wait_ready`."""
        if self.running:
            raise CollectorError("the collector is already running")
        if self._binary is None:
            self._binary = build()
        missing = unset_references(self.configs, self.env)
        if missing:
            raise CollectorError(f"the config needs these variables, not set in env: {', '.join(missing)}")
        command = [str(self._binary)]
        for path in self.configs:
            command += ["--config", str(path)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process.start(
            command, env=_child_env(self.env), cwd=self.workdir, banner=f"=== otelor: starting {' '.join(command)}"
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the health check answers 200; raise :class:`CollectorError` with the log's tail if
        the process exits or ``timeout`` passes."""
        self._process.wait_ready(self._healthy, timeout, CollectorError, interval=0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (graceful: the queue is left consistent) and wait; SIGKILL after ``timeout``."""
        self._process.stop(timeout)

    def kill(self) -> None:
        """SIGKILL the collector at once, as a crash or OOM kill would; the queue directory is kept."""
        self._process.kill()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop, start again with the same ports, env and queue directory, and wait until ready."""
        self.stop()
        self.start()
        self.wait_ready(timeout)

    def remove(self) -> None:
        """Stop the collector and delete its work directory (queue and log) if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- output

    def log_text(self, *, current_run_only: bool = False) -> str:
        """Everything the collector printed (all runs, or only the current one)."""
        return self._process.log_text(current_run_only=current_run_only)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return self._process.log_tail(lines)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Collector grpc={self.grpc_endpoint} http={self.http_port} {state} {self.workdir}>"

    # -- internals

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:  # noqa: S310 (loopback URL)
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


# --- command line ---------------------------------------------------------------------------------


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env takes NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def _cli_build(_args: argparse.Namespace) -> int:
    print(build())
    return 0


def _cli_validate(args: argparse.Namespace) -> int:
    configs = args.config or [CONFIG]
    env = {name: value for name, value in os.environ.items() if _LEAKY_ENV.match(name)}
    env.update(_parse_env(args.env))
    result = validate(configs, env)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    missing = unset_references(configs, env)
    if missing:
        print(f"HINT: not set (the config has no default for them): {', '.join(missing)}", file=sys.stderr)
    if result.returncode == 0:
        shown = ", ".join(
            f"{name}={'***' if _SECRET_NAMES.search(name) else value}" for name, value in sorted(env.items())
        )
        print(f"valid: {', '.join(map(str, configs))}" + (f" (with {shown})" if shown else ""))
    return result.returncode


def cli(argv: Sequence[str]) -> int:
    """``python -m tests.stack collector build|validate …``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.stack collector", description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("build", help="build (or find cached) otelcol-openreplay and print its path").set_defaults(
        handler=_cli_build
    )
    check = actions.add_parser(
        "validate",
        help="run `otelcol-openreplay validate` on the config (default: collector/otelcol-openreplay.yaml)",
        description="Uses the OPENREPLAY_* / ELASTICSEARCH_URL variables of this shell, plus --env.",
    )
    check.add_argument("--config", action="append", type=Path, help="config file (repeat to merge several)")
    check.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable")
    check.set_defaults(handler=_cli_validate)
    args = parser.parse_args(list(argv))
    try:
        return int(args.handler(args))
    except CollectorError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
