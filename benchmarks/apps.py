"""What a user feels: requests/s and latency of real apps with otel-openreplay on and off, side by side.

A Flask app under gunicorn and a FastAPI app under uvicorn (``benchmarks/app_flask.py``,
``benchmarks/app_fastapi.py``), each started twice under ``opentelemetry-instrument`` — once as is
(otel-openreplay on), once with ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=openreplay`` (off: the package
is not even imported) — and loaded in turn by ``wrk``: every request carries the session header and
the app logs one ERROR for it. Each round starts fresh servers (two identical processes can differ by
several % for their whole life), warms them up and loads them one after the other in a shuffled order;
each round gives its own ratio of requests/s and the median over the rounds is reported beside
p50/p99 latency, the servers' CPU time per request (from ``/proc/<pid>/stat``: what a CPU-bound
server's throughput is, whatever else the machine runs) and a control — ``off`` against a second
``off`` — that shows how far the machine alone moves the ratio. The servers share one CPU and ``wrk``
has the other (``taskset``). Also reported: the import time of what ``opentelemetry-instrument`` loads
from the package (``-X importtime``, after the OpenTelemetry SDK is imported) and the resident memory
of each server after its load.

Exporters: the SDK's console exporters for logs and spans, written to ``/dev/null``. The export work
(every record and span encoded in the app's process, as with OTLP) is the same on both sides, and
no collector competes for the same 2 cores. ``wrk`` comes from Debian (``apt-get install wrk``; the
script installs it when run as root). Run::

    .venv/bin/python benchmarks/apps.py                 # ~10 min; writes benchmarks/results/apps.json
    .venv/bin/python benchmarks/apps.py --rounds 3 --duration 5 --apps flask

What it must never do: assert (it reports each target with met/missed), or leave a server running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "1bq7y3xsc6hdc.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
TARGET = 0.97
TICKS_PER_S = os.sysconf("SC_CLK_TCK")

SERVERS: dict[str, list[str]] = {
    "flask": ["gunicorn", "--workers", "1", "--threads", "4", "benchmarks.app_flask:app"],
    "fastapi": ["uvicorn", "benchmarks.app_fastapi:app", "--host", "127.0.0.1", "--no-access-log"],
}
VARIANTS: dict[str, dict[str, str]] = {
    "on": {},
    "off": {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openreplay"},
    "off-again": {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openreplay"},
}
"""``off-again`` is a control: ``off`` against itself shows how far this machine moves a ratio."""
IMPORTED_FIRST = (
    "opentelemetry.sdk._logs, opentelemetry.sdk.trace, opentelemetry.propagate, "
    "opentelemetry.instrumentation.instrumentor"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One app under ``opentelemetry-instrument``, pinned to ``cpu``, its output to ``stdout``."""

    def __init__(self, app: str, variant: str, cpu: int, stdout: Path | None = None) -> None:
        self.app, self.variant = app, variant
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = SERVERS[app]
        bind = ["--port", str(self.port)] if app == "fastapi" else ["--bind", f"127.0.0.1:{self.port}"]
        command = [str(BIN / "opentelemetry-instrument"), str(BIN / server[0]), *server[1:], *bind]
        env = {
            **os.environ,
            "OTEL_SERVICE_NAME": f"bench-{app}",
            "OTEL_LOGS_EXPORTER": "console",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "PYTHONHASHSEED": "0",  # one less difference between the two processes
            **VARIANTS[variant],
        }
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  closed by stop()
        out = stdout.open("wb") if stdout is not None else open(os.devnull, "wb")  # noqa: SIM115
        with out:
            self._process = subprocess.Popen(
                ["taskset", "-c", str(cpu), *command], cwd=ROOT, env=env, stdout=out, stderr=self._stderr
            )

    def wait_ready(self, timeout: float = 60) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._stderr.seek(0)
                raise RuntimeError(f"{self.app}/{self.variant} exited: {self._stderr.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.app}/{self.variant} not ready in {timeout}s")

    def rss_kib(self) -> int:
        """Resident memory of the server's process tree (gunicorn: master and worker), KiB."""
        return sum(_status_kib(pid, "VmRSS") for pid in _tree(self._process.pid))

    def cpu_ticks(self) -> int:
        """User + system CPU of the server's process tree so far, in clock ticks."""
        return sum(_cpu_ticks(pid) for pid in _tree(self._process.pid))

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._stderr.close()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids.extend(_tree(int(child)))
    return pids


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sys.path.insert(0, str(ROOT))  # tests.stack.apt: the project's one apt-get install (root, lock, retry)
    from tests.stack import apt

    try:
        apt.install(["wrk"], "benchmarks/apps.py needs wrk")
    except apt.AptUnavailable as error:
        raise SystemExit(f"{error} (elsewhere: brew install wrk)") from None
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("benchmarks/apps.py needs wrk, still missing after apt-get install wrk")
    return found


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def load(server: Server, wrk: str, cpu: int, duration: int, connections: int) -> dict[str, float]:
    """One ``wrk`` run: requests/s, p50/p99 latency (ms), the server's CPU ms per request, errors."""
    url = server.url
    ticks = server.cpu_ticks()
    command = [
        "taskset", "-c", str(cpu), wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
        "-H", f"X-OpenReplay-SessionToken: {TOKEN}", f"{url}/error",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    ticks = server.cpu_ticks() - ticks
    figures: dict[str, float] = {"requests_per_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))}  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    figures["cpu_ms_per_request"] = round(ticks * 1000 / TICKS_PER_S / max(requests, 1), 4)
    for percentile in ("50", "99"):
        figures[f"p{percentile}_ms"] = round(_ms(re.search(rf"^\s+{percentile}%\s+(\S+)", out, re.M).group(1)), 3)  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["errors"] = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return figures


def check_tagging(app: str, cpu: int) -> dict[str, bool]:
    """Does 'on' prefix the ERROR record, and 'off' not? One request each, output to a file."""
    seen: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("on", "off"):
            path = Path(tmp) / f"{variant}.out"
            server = Server(app, variant, cpu, stdout=path)
            try:
                server.wait_ready()
                headers = {"X-OpenReplay-SessionToken": TOKEN}
                request = urllib.request.Request(f"{server.url}/error", headers=headers)  # noqa: S310
                with urllib.request.urlopen(request, timeout=10):  # noqa: S310
                    pass
                prefix = f"[openReplaySessionToken={TOKEN}]"
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and "payment declined" not in path.read_text(errors="replace"):
                    time.sleep(0.2)
                seen[variant] = prefix in path.read_text(errors="replace")
            finally:
                server.stop()
    return seen


def bench_app(app: str, wrk: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    tagging = check_tagging(app, args.server_cpu)
    rounds: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    rss: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        # Fresh processes each round: two identical servers differ by several % for the whole of their
        # lives (memory layout), so a pair kept for the run would measure its own luck, not the package.
        order = list(VARIANTS)
        rng.shuffle(order)
        servers = {variant: Server(app, variant, args.server_cpu) for variant in order}
        try:
            for server in servers.values():
                server.wait_ready()
            for server in servers.values():  # warm-up: imports, first-request paths, the caches
                load(server, wrk, args.client_cpu, args.warmup, args.connections)
            rng.shuffle(order)
            for variant in order:
                rounds[variant].append(load(servers[variant], wrk, args.client_cpu, args.duration, args.connections))
                rss[variant].append(servers[variant].rss_kib() / 1024)
        finally:
            for server in servers.values():
                server.stop()
    per_round = [
        on["requests_per_s"] / off["requests_per_s"] for on, off in zip(rounds["on"], rounds["off"], strict=True)
    ]
    median_ratio = statistics.median(per_round)
    control = [
        again["requests_per_s"] / off["requests_per_s"]
        for again, off in zip(rounds["off-again"], rounds["off"], strict=True)
    ]
    capacity = [  # requests one CPU-second serves: what throughput is on a CPU-bound server, load aside
        off["cpu_ms_per_request"] / on["cpu_ms_per_request"]
        for on, off in zip(rounds["on"], rounds["off"], strict=True)
    ]

    def med(variant: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds[variant]), 3)

    return {
        "server": " ".join(SERVERS[app][:-1] if app == "flask" else SERVERS[app][:1]),
        "tagged (on, off)": [tagging.get("on"), tagging.get("off")],
        "requests/s, median (on, off)": [med("on", "requests_per_s"), med("off", "requests_per_s")],
        "TARGET 3: requests/s on / off": {
            "median": round(median_ratio, 3),
            "min": round(min(per_round), 3),
            "max": round(max(per_round), 3),
            "target": f">= {TARGET}",
            "met": median_ratio >= TARGET,
        },
        "control: requests/s off-again / off (the noise)": {
            "median": round(statistics.median(control), 3),
            "min": round(min(control), 3),
            "max": round(max(control), 3),
        },
        "server CPU ms per request, median (on, off)": [
            med("on", "cpu_ms_per_request"),
            med("off", "cpu_ms_per_request"),
        ],
        "requests per CPU-second on / off": {
            "median": round(statistics.median(capacity), 3),
            "min": round(min(capacity), 3),
            "max": round(max(capacity), 3),
        },
        "p50 ms, median (on, off)": [med("on", "p50_ms"), med("off", "p50_ms")],
        "p99 ms, median (on, off)": [med("on", "p99_ms"), med("off", "p99_ms")],
        "errors or non-2xx (on, off)": [sum(r["errors"] for r in rounds[v]) for v in ("on", "off")],
        "RSS MiB after the load, median (on, off)": [
            round(statistics.median(rss["on"]), 1),
            round(statistics.median(rss["off"]), 1),
        ],
        "rounds": rounds,
    }


def import_time_ms(runs: int) -> dict[str, float]:
    """Cumulative import time of ``otel_openreplay.instrumentor`` (what the entry point loads) after the SDK's."""
    samples = []
    code = f"import {IMPORTED_FIRST}; import otel_openreplay.instrumentor"
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
        ).stderr
        for line in err.splitlines():
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 3 and parts[2] == "otel_openreplay.instrumentor":
                samples.append(int(parts[1]) / 1000)
    return {
        "median": round(statistics.median(samples), 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("--rounds", type=int, default=7, help="on/off pairs per app (default 7)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per server (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU of both servers (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU of wrk (default 1)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--import-runs", type=int, default=15, help="interpreters started for the import time")
    parser.add_argument("--output", type=Path, default=RESULTS / "apps.json")
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    rng = random.Random(args.seed)  # noqa: S311  an order, not a secret
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    figures: dict[str, Any] = {app: bench_app(app, wrk, args, rng) for app in args.apps}
    figures["import time of otel_openreplay.instrumentor after the SDK, ms"] = import_time_ms(args.import_runs)
    result = {
        "benchmark": "apps",
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "nproc": os.cpu_count(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": round(load_start, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "wrk": f"-t1 -c{args.connections} -d{args.duration}s, CPU {args.client_cpu}; servers on CPU {args.server_cpu}",
        "exporters": "console (logs and spans) into /dev/null",
        "rounds": args.rounds,
        "run_seconds": round(time.monotonic() - started, 1),
        **figures,
    }
    for app in args.apps:
        shown = {key: value for key, value in figures[app].items() if key != "rounds"}
        print(f"{app}: {json.dumps(shown)}")
    print(f"import time: {json.dumps(figures['import time of otel_openreplay.instrumentor after the SDK, ms'])} ms")
    for app in args.apps:
        value = figures[app]["TARGET 3: requests/s on / off"]
        verdict = "met" if value["met"] else "MISSED"
        ratio = f"{value['median']:.3f} ({value['min']:.3f}-{value['max']:.3f})"
        print(f"TARGET 3  {app:<8} requests/s on / off  {ratio}  {value['target']}  {verdict}")
        cpu = figures[app]["requests per CPU-second on / off"]
        spread = f"{cpu['median']:.3f} ({cpu['min']:.3f}-{cpu['max']:.3f})"
        print(f"          {app:<8} requests per CPU-second on / off  {spread}")
        noise = figures[app]["control: requests/s off-again / off (the noise)"]
        spread = f"{noise['median']:.3f} ({noise['min']:.3f}-{noise['max']:.3f})"
        print(f"          {app:<8} control: requests/s off / off  {spread}")
    print(
        f"(load average {load_start:.2f} at start, {result['load_average_at_end']} at end; {result['run_seconds']} s)"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
