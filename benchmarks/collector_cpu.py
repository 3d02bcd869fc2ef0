"""CPU per record of the shipped collector config against the stock pipeline a user would otherwise write.

One command starts a real Elasticsearch 8.19.21 (tests/stack/es.py) and runs the real ``otelcol-openreplay``
(collector/build.sh) once per case per round, every case on the very same pre-encoded OTLP/HTTP requests:

* ``ours``: ``collector/otelcol-openreplay.yaml`` as shipped (memory_limiter → filter → transform → the
  Elasticsearch exporter in bodymap mode, persistent queue with fsync), into a fresh index set up by
  ``otel-openreplay es setup``'s template;
* ``stock``: what a user writes without this project: OTLP receiver → Elasticsearch exporter, with the SAME
  durability and batching (the same ``file_storage`` queue with ``fsync``, the same ``sending_queue``), into a
  fresh plain index. The exporter's default mapping (``otel``) writes only to data streams: pointed at
  OpenReplay's plain ``logs`` index it has every document refused (404 "is not a data stream"), and this
  Elasticsearch distribution (the test zip) has no data streams at all (``PUT _data_stream`` answers 405).
  So the baseline is the stock mapping that a plain index accepts, ``none`` (the exporter's generic layout:
  ``@timestamp``, ``Body``, ``Attributes.*``, ``Resource.*``...), chosen by ``mapping::allowed_modes: [none]``
  with ``logs_index``. Its documents are useless to OpenReplay (no prefix in a ``message``, no ``level``):
  it is the cost of "receive, queue durably, index".

The figure is the collector process's own CPU time (utime + stime from /proc/<pid>/stat) from just before the
first request to the moment Elasticsearch has indexed every record (index stats, polled every 50 ms), divided
by the records: µs of collector CPU per record. Records/s is records ÷ that wall time (Elasticsearch and the
sender share the machine, so it is indicative only). Rounds run every case once in a shuffled order; the
result is the median over rounds of ours ÷ stock in that round, next to the medians of each case.

Records: ``--records`` (20,000) error records carrying only ``openReplaySessionToken`` (the token of one of
50 sessions, as the ≤ 1.20 tracker header gives it), one in ten with an exception whose stack trace is
1.5 KB; OTLP/HTTP protobuf requests of 512 records, sent one after another over one connection.

Run::

    .venv/bin/python benchmarks/collector_cpu.py [--rounds 5] [--records 20000]
    .venv/bin/python benchmarks/collector_cpu.py --variant benchmarks/collector-transform-flat.yaml  # + a variant
    .venv/bin/python benchmarks/collector_cpu.py --cases ours --profile /tmp/prof   # + perf record per run

What it must never do: use an Elasticsearch or collector it did not start (it starts its own and removes them,
also on Ctrl-C); assert anything (it reports; the tests assert); hide a missing document (found counts are in
the results).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import pipeline  # noqa: E402  (benchmarks/pipeline.py: the Elasticsearch stack and /proc readers)

from tests.stack.ingest import base36  # noqa: E402  (Go's FormatInt(n, 36), as OpenReplay writes tokens)

RESULTS = REPO / "benchmarks" / "results"
CASES = ("ours", "stock", "variant")
TARGET = 1.5
"""ours ÷ stock, CPU per record, at most."""
BATCH = 512
SESSIONS = 50
PROFILE_HZ = 1999

STOCK_CONFIG = """\
# The stock pipeline: OTLP receiver -> Elasticsearch exporter with its defaults, and the same persistent
# queue (file_storage with fsync) and batching as collector/otelcol-openreplay.yaml.
extensions:
  health_check:
    endpoint: ${env:OPENREPLAY_HEALTH_ENDPOINT}
  file_storage/stock:
    directory: ${env:OPENREPLAY_QUEUE_DIR}
    create_directory: true
    fsync: true
    compaction:
      directory: ${env:OPENREPLAY_QUEUE_DIR}
      on_start: true
      on_rebound: true
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:OPENREPLAY_OTLP_GRPC_ENDPOINT}
      http:
        endpoint: ${env:OPENREPLAY_OTLP_HTTP_ENDPOINT}
exporters:
  elasticsearch/stock:
    endpoint: ${env:OPENREPLAY_ES_URL}
    user: ${env:OPENREPLAY_ES_USER}
    password: ${env:OPENREPLAY_ES_PASSWORD}
    logs_index: ${env:OPENREPLAY_ES_INDEX}
    mapping:
      allowed_modes: [none]
    sending_queue:
      enabled: true
      storage: file_storage/stock
      sizer: items
      queue_size: 100000
      num_consumers: 1
      batch:
        flush_timeout: 200ms
        sizer: bytes
        min_size: 1000000
        max_size: 5000000
service:
  extensions: [health_check, file_storage/stock]
  telemetry:
    metrics:
      level: none
    logs:
      level: ${env:OPENREPLAY_LOG_LEVEL}
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [elasticsearch/stock]
"""


# --- the records ---------------------------------------------------------------------------------------------


def _token(session_id: int) -> str:
    """A token in OpenReplay's shape: base36(id).base36(delay).base36(expiry).base58(HMAC) (HMAC made up)."""
    return f"{base36(session_id)}.{base36(0)}.{base36(1_800_000_000_000)}.3kgTmVy6B3Y2dQp2Fm1u4R7zQwErTyUiOp"


def _stack_trace(n: int) -> str:
    frames = "".join(
        f'  File "/srv/app/shop/checkout/step_{i}.py", line {100 + i}, in handle_{i}\n'
        "    result = next_step(order, card)\n"
        for i in range(18)
    )
    text = f"Traceback (most recent call last):\n{frames}TimeoutError: upstream timed out after 30 s (order {n})\n"
    return text[:1536] if len(text) > 1536 else text.ljust(1536, " ")


def requests(records: int, tag: str) -> list[bytes]:
    """OTLP/HTTP protobuf bodies of ``BATCH`` error records each (see the module docstring)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    def attr(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    base_ms = int(time.time() * 1000) - 600_000
    sessions = [((base_ms - 1_550_000_000_000 - 60_000 * s) << 24) | (s << 8) for s in range(SESSIONS)]
    tokens = [_token(s) for s in sessions]
    bodies: list[bytes] = []
    for start in range(0, records, BATCH):
        logs = []
        for n in range(start, min(start + BATCH, records)):
            attributes = [attr("openReplaySessionToken", tokens[n % SESSIONS])]
            if n % 10 == 0:
                attributes += [
                    attr("exception.type", "TimeoutError"),
                    attr("exception.message", f"upstream timed out after 30 s (order {n})"),
                    attr("exception.stacktrace", _stack_trace(n)),
                ]
            logs.append(
                LogRecord(
                    time_unix_nano=(base_ms + n) * 1_000_000 + 123_456,
                    observed_time_unix_nano=(base_ms + n) * 1_000_000 + 999_000,
                    severity_number=17,
                    severity_text="ERROR",
                    body=AnyValue(string_value=f"payment declined: order {tag}-{n} card 4242 expired"),
                    attributes=attributes,
                )
            )
        request = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(
                        attributes=[attr("service.name", "checkout"), attr("telemetry.sdk.language", "python")]
                    ),
                    scope_logs=[ScopeLogs(scope=InstrumentationScope(name="shop.checkout"), log_records=logs)],
                )
            ]
        )
        bodies.append(request.SerializeToString())
    return bodies


def send(port: int, bodies: Sequence[bytes]) -> None:
    """POST every body to /v1/logs, one after another over one connection; each must answer 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for body in bodies:
            connection.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"collector answered {response.status} to an OTLP request")
    finally:
        connection.close()


# --- one run ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def case_collector(
    stack: pipeline.Stack, case: str, index: str, workdir: Path, variant: Path | None = None
) -> Iterator[Any]:
    env = {
        "OPENREPLAY_ES_URL": stack.node.url,
        "OPENREPLAY_ES_USER": stack.node.user,
        "OPENREPLAY_ES_PASSWORD": stack.node.password,
        "OPENREPLAY_ES_INDEX": index,
    }
    if case == "ours":
        configs = [stack.collectors.CONFIG, *stack.overlays]
    elif case == "variant" and variant is not None:
        configs = [stack.collectors.CONFIG, *stack.overlays, variant]
    else:
        config = workdir / f"{case}.yaml"
        config.write_text(STOCK_CONFIG)
        configs = [config]
    running = stack.collectors.Collector(configs, env=env, binary=stack.binary, log_level="warn")
    running.__enter__()
    try:
        yield running
    finally:
        running.remove()


def run_case(
    stack: pipeline.Stack,
    case: str,
    rnd: int,
    bodies: Sequence[bytes],
    records: int,
    workdir: Path,
    profile: Path | None = None,
    variant: Path | None = None,
) -> dict:
    index = f"cpu-{case}-{rnd}"
    if case in ("ours", "variant"):
        stack.index(index)  # the project's template, as `otel-openreplay es setup` makes it
    else:
        stack.admin.indices.create(index=index)  # plain, dynamic mapping
    with case_collector(stack, case, index, workdir, variant) as collector:
        time.sleep(0.5)  # start-up work (compaction, first GC) is not the records'
        load = os.getloadavg()[0]
        perf = None
        if profile is not None:  # Linux perf, sampling the collector during the measured window only
            perf = subprocess.Popen(
                [
                    "perf",
                    "record",
                    "-F",
                    str(PROFILE_HZ),
                    "-g",
                    "-o",
                    str(profile / f"{case}-{rnd}.data"),
                    "-p",
                    str(collector.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        cpu_before = pipeline.cpu_seconds(collector.pid)
        started = time.monotonic()
        send(collector.http_port, bodies)
        sent = time.monotonic()
        ended = pipeline.wait_indexed(stack, index, records)
        cpu = pipeline.cpu_seconds(collector.pid) - cpu_before
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        vmhwm = pipeline.status_kb(collector.pid, "VmHWM") if collector.pid else None
    found = stack.count(index)
    stack.admin.indices.delete(index=index)
    parts = profile_parts(profile / f"{case}-{rnd}.data", stack.binary, records) if profile else None
    return {
        "profile_us_per_record": parts,
        "case": case,
        "round": rnd,
        "records": records,
        "found": found,
        "cpu_us_per_record": round(cpu * 1e6 / records, 1),
        "records_per_s": round(records / (ended - started)),
        "request_s": round(sent - started, 3),
        "seconds": round(ended - started, 3),
        "collector_vmhwm_mb": round(vmhwm / 1024, 1) if vmhwm else None,
        "load_before": round(load, 2),
    }


PROFILE_PARTS = {
    "transform (OTTL)": r"transformprocessor/.*\(\*Processor\)\.ProcessLogs$",
    "filter": r"filterprocessor\.\(\*filterLogProcessor\)\.processLogs$",
    "GC (background mark)": r"^runtime\.gcBgMarkWorker$",
    "allocation (mallocgc, anywhere)": r"^runtime\.mallocgc$",
    "persistent queue: bbolt write + fsync": r"^go\.etcd\.io/bbolt\.\(\*DB\)\.Update$",
    "persistent queue: encode / decode batches": r"queuebatch\.\(\*logsEncoding\)\.(Marshal|Unmarshal)$",
    "Elasticsearch exporter": r"elasticsearchexporter\.\(\*elasticsearchExporter\)\.pushLogsData$",
    "OTLP decode": r"otlpreceiver\.\(\*protoEncoder\)\.unmarshalLogsRequest$",
    "kernel (syscalls: fsync, network)": r"^\[kernel\]$",
}


def profile_parts(data: Path, binary: Path, records: int) -> dict[str, float]:
    """µs per record in each part of a ``perf record -g`` profile (inclusive; parts overlap).

    The binary is stripped, but Go keeps its line table: ``go tool addr2line`` names the frames (perf reports
    offsets into the file; the text is mapped at 0x400000).
    """
    import re
    import shutil

    if shutil.which("perf") is None or shutil.which("go") is None:
        return {}
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,dso"], capture_output=True, text=True)
    samples: list[list[tuple[int, bool]]] = [[]]
    for line in script.stdout.splitlines():
        address, _, dso = line.strip().partition(" ")
        if not address:
            samples.append([])
            continue
        samples[-1].append((int(address, 16), binary.name in dso))
    samples = [sample for sample in samples if sample]
    addresses = sorted({address + 0x400000 for sample in samples for address, own in sample if own})
    named = subprocess.run(
        ["go", "tool", "addr2line", str(binary)],
        input="".join(f"{address:#x}\n" for address in addresses),
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    names = {address: named[2 * i] for i, address in enumerate(addresses) if 2 * i < len(named)}
    counts = dict.fromkeys(PROFILE_PARTS, 0)
    for sample in samples:
        frames = {names.get(address + 0x400000, "?") if own else "[kernel]" for address, own in sample}
        for part, pattern in PROFILE_PARTS.items():
            if any(re.search(pattern, frame) for frame in frames):
                counts[part] += 1
    period_us = 1e6 / PROFILE_HZ
    parts = {part: round(count * period_us / records, 1) for part, count in counts.items()}
    parts["all samples"] = round(len(samples) * period_us / records, 1)
    return parts


def summarise(runs: Sequence[dict], warmup: int) -> dict[str, Any]:
    counted = [r for r in runs if r["round"] >= warmup]
    rounds = sorted({r["round"] for r in counted})
    per_case: dict[str, Any] = {}
    for case in CASES:
        mine = [r for r in counted if r["case"] == case]
        if not mine:
            continue
        per_case[case] = {
            "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in mine),
            "cpu_us_min_max": [min(r["cpu_us_per_record"] for r in mine), max(r["cpu_us_per_record"] for r in mine)],
            "records_per_s": round(statistics.median(r["records_per_s"] for r in mine)),
            "request_s": statistics.median(r["request_s"] for r in mine),
            "missing": sum(r["records"] - r["found"] for r in mine),
        }
    ratios: dict[str, Any] = {}
    for top, base in (("ours", "stock"), ("variant", "stock"), ("ours", "variant")):
        values = []
        for rnd in rounds:
            mine = [r for r in counted if r["round"] == rnd and r["case"] == top]
            other = [r for r in counted if r["round"] == rnd and r["case"] == base]
            if mine and other:
                values.append(mine[0]["cpu_us_per_record"] / other[0]["cpu_us_per_record"])
        if values:
            ratios[f"{top}/{base}"] = {
                "median": round(statistics.median(values), 2),
                "min_max": [round(min(values), 2), round(max(values), 2)],
            }
    verdict = ratios.get("ours/stock", {}).get("median")
    return {
        "cases": per_case,
        "ratios": ratios,
        "target": f"ours/stock <= {TARGET}",
        "met": verdict is not None and verdict <= TARGET,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (after one warm-up round)")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--cases", default="ours,stock", help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--variant", type=Path, help="case `variant`: ours with this config merged over it")
    parser.add_argument("--overlay", type=Path, action="append", default=[], help="config merged after ours")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait until the 1-min load is at most this")
    parser.add_argument("--max-wait", type=float, default=300.0, help="seconds to wait for --max-load at most")
    parser.add_argument("--profile", type=Path, help="also record `perf record -g` of each run into this directory")
    parser.add_argument("--output", type=Path, default=RESULTS / "collector_cpu.json")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    args.overlay = [path.resolve() for path in args.overlay]  # the collector runs in another directory
    args.variant = args.variant.resolve() if args.variant else None
    if args.variant is not None and "variant" not in cases:
        cases.append("variant")
    if "variant" in cases and args.variant is None:
        parser.error("case `variant` needs --variant PATH")

    waited = time.monotonic()
    while os.getloadavg()[0] > args.max_load and time.monotonic() - waited < args.max_wait:
        time.sleep(5)
    started_load = os.getloadavg()[0]
    stack = pipeline.Stack(args.overlay)
    runs: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="collector-cpu-") as tmp:
            for rnd in range(args.rounds + 1):
                order = random.sample(cases, len(cases))
                bodies = requests(args.records, f"r{rnd}")
                for case in order:
                    run = run_case(stack, case, rnd, bodies, args.records, Path(tmp), args.profile, args.variant)
                    runs.append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
    finally:
        stack.close()
    summary = summarise(runs, warmup=1)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), "load_at_start": started_load},
        "variant": str(args.variant.relative_to(REPO))
        if args.variant and args.variant.is_relative_to(REPO)
        else (str(args.variant) if args.variant else None),
        "settings": {
            "records": args.records,
            "batch": BATCH,
            "sessions": SESSIONS,
            "rounds": args.rounds,
            "overlays": [str(p) for p in args.overlay],
        },
        "summary": summary,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'case':<12} {'µs CPU/record':>14} {'min-max':>14} {'records/s':>10} {'missing':>8}")
    for case, row in summary["cases"].items():
        low, high = row["cpu_us_min_max"]
        span = f"{low}-{high}"
        print(
            f"{case:<12} {row['cpu_us_per_record']:>14.1f} {span:>14} {row['records_per_s']:>10,} {row['missing']:>8}"
        )
    for name, ratio in summary["ratios"].items():
        print(f"{name}: median of per-round ratios {ratio['median']} (min-max {ratio['min_max']})")
    print(f"target {summary['target']}: {'PASS' if summary['met'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
