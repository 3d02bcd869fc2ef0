"""What otel-openreplay costs the application: a logging call, and a request's header extraction.

Every figure is a ratio measured side by side in one run, so the machine's speed cancels out: the
variants are interleaved within each round, each round gives its own ratio, and the median over the
rounds is reported with its spread (min and max). The process is pinned to one CPU (the last one,
``--cpu`` to choose) so the scheduler's moves and the other core's load add less noise; the batch
processor's worker thread shares that CPU, as it shares the application's. Run::

    .venv/bin/python benchmarks/overhead.py            # prints a table, writes benchmarks/results/overhead.json
    .venv/bin/python benchmarks/overhead.py --json     # the JSON on stdout too

Logging: stdlib ``logger.error`` through OpenTelemetry's logging handler into a LoggerProvider whose
export path is a BatchLogRecordProcessor with an exporter that drops everything, with
  * no enrichment (baseline),
  * ``OpenReplayLogProcessor`` first,
  * contrib's ``BaggageLogProcessor`` (all keys) first,
each with and without a current session.
Extraction: the global propagator (tracecontext + baggage) with and without ours appended, on a
WSGI environ read through the WSGI instrumentation's getter, with and without a session header.

What it must never do: assert (it reports; targets are printed with each figure); measure on a busy
machine without saying so (it waits for the 1-minute load average to drop to ``--max-load`` and records
it in the results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from opentelemetry import context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageLogProcessor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import Session, with_session
from otel_openreplay.settings import Settings

TOKEN = "1bq7y3xsc6hdc.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
RESULTS = Path(__file__).resolve().parent / "results"

Samples = dict[str, list[float]]
"""Nanoseconds per call, per variant, one value per round (rounds aligned across variants)."""


class DropExporter(LogRecordExporter):
    def export(self, batch: Sequence[object]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def logging_variant(enrichment: LogRecordProcessor | None) -> tuple[logging.Logger, LoggerProvider]:
    provider = LoggerProvider(shutdown_on_exit=False)
    if enrichment is not None:
        provider.add_log_record_processor(enrichment)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(DropExporter(), max_queue_size=1 << 20, max_export_batch_size=4096)
    )
    logger = logging.getLogger(f"bench.{id(provider)}")
    logger.propagate = False
    logger.handlers = [LoggingHandler(logger_provider=provider)]
    logger.setLevel(logging.INFO)
    return logger, provider


def time_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def interleaved(variants: Mapping[str, Callable[[], object]], calls: int, rounds: int) -> Samples:
    """Time every variant once per round, in turn; a warm-up pass first; garbage collected between."""
    for fn in variants.values():
        time_per_call(fn, max(1, calls // 10))
    samples: Samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            gc.collect()
            samples[name].append(time_per_call(fn, calls))
    return samples


def bench_logging(calls: int, rounds: int) -> Samples:
    settings = Settings.from_env({})
    loggers = {
        "baseline": logging_variant(None),
        "openreplay": logging_variant(OpenReplayLogProcessor(settings)),
        "baggage": logging_variant(BaggageLogProcessor(ALLOW_ALL_BAGGAGE_KEYS)),
    }
    results: Samples = {}
    for with_session_ in (False, True):
        ctx = with_session(Session.of(TOKEN)) if with_session_ else context.get_current()  # type: ignore[arg-type]
        token = context.attach(ctx)
        try:
            suffix = "session" if with_session_ else "no-session"
            variants = {
                f"{name}/{suffix}": (lambda lg=lg: lg.error("payment declined: card %s expired", "4242"))
                for name, (lg, _) in loggers.items()
            }
            results.update(interleaved(variants, calls, rounds))
        finally:
            context.detach(token)
        for _, provider in loggers.values():
            provider.force_flush()
    for _, provider in loggers.values():
        provider.shutdown()
    return results


def bench_extract(calls: int, rounds: int) -> Samples:
    plain = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    ours = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator(), OpenReplayPropagator()])
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/checkout",
        "HTTP_HOST": "shop.example",
        "HTTP_USER_AGENT": "Mozilla/5.0",
        "HTTP_ACCEPT": "application/json",
        "HTTP_TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    with_header = {**environ, "HTTP_X_OPENREPLAY_SESSIONTOKEN": TOKEN}
    return interleaved(
        {
            "plain/no-header": lambda: plain.extract(environ, getter=wsgi_getter),
            "openreplay/no-header": lambda: ours.extract(environ, getter=wsgi_getter),
            "plain/header": lambda: plain.extract(with_header, getter=wsgi_getter),
            "openreplay/header": lambda: ours.extract(with_header, getter=wsgi_getter),
        },
        calls,
        rounds,
    )


def spread(values: Sequence[float]) -> dict[str, object]:
    """Median and min/max of per-round values."""
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def best(top: Sequence[float], bottom: Sequence[float]) -> float:
    """Ratio of the fastest rounds: each variant's least-disturbed run (what ``timeit`` recommends)."""
    return round(min(top) / min(bottom), 3)


def ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Per-round ratios (rounds are paired: the variants ran back to back)."""
    return [a / b for a, b in zip(top, bottom, strict=True) if b > 0]


def against_target(top: Sequence[float], bottom: Sequence[float], target: float) -> dict[str, object]:
    """Per-round ratios of ``top`` to ``bottom``: median, spread, best rounds, and the target with pass/fail."""
    per_round = ratios(top, bottom)
    figure = spread(per_round)
    figure["best"] = best(top, bottom)
    figure["target"] = f"<= {target}"
    figure["pass"] = statistics.median(per_round) <= target
    return figure


def report(log: Samples, extract: Samples) -> dict[str, object]:
    out: dict[str, object] = {}
    for suffix in ("no-session", "session"):
        base, ours, bag = log[f"baseline/{suffix}"], log[f"openreplay/{suffix}"], log[f"baggage/{suffix}"]
        added: dict[str, object] | None = None
        if suffix == "session":  # without a session the baggage processor adds ~nothing: a ratio to it is noise
            ours_added = [o - b for o, b in zip(ours, base, strict=True)]
            bag_added = [g - b for g, b in zip(bag, base, strict=True)]
            added = spread(ratios(ours_added, bag_added))
            added["best"] = round((min(ours) - min(base)) / (min(bag) - min(base)), 3) if min(bag) > min(base) else None
            added["target"] = "<= 0.5"
            added["pass"] = statistics.median(ratios(ours_added, bag_added)) <= 0.5
        out[f"log {suffix}"] = {
            "ns per call, median (baseline, openreplay, baggage)": [
                round(statistics.median(base)),
                round(statistics.median(ours)),
                round(statistics.median(bag)),
            ],
            "whole path vs baseline": against_target(ours, base, 1.05),
            "added cost vs BaggageLogProcessor's": added,
        }
    for suffix, target in (("header", 1.25), ("no-header", 1.03)):
        plain, ours = extract[f"plain/{suffix}"], extract[f"openreplay/{suffix}"]
        out[f"extract {suffix}"] = {
            "ns per call, median (plain, with openreplay)": [
                round(statistics.median(plain)),
                round(statistics.median(ours)),
            ],
            "ratio": against_target(ours, plain, target),
        }
    return out


def pin(cpu: int | None) -> int | None:
    """Pin this process (and the threads it starts later) to one CPU; the last one unless ``cpu``."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    chosen = cpu if cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {chosen})
    return chosen


def wait_for_quiet(max_load: float, patience_s: float) -> float:
    """Sleep until the 1-minute load average is at most ``max_load`` (or ``patience_s`` passed); return it."""
    deadline = time.monotonic() + patience_s
    load = os.getloadavg()[0]
    while load > max_load and time.monotonic() < deadline:
        print(f"[overhead] load average {load:.2f} > {max_load}: waiting…", file=sys.stderr, flush=True)
        time.sleep(20)
        load = os.getloadavg()[0]
    return load


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement (default 20000)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds; median and spread (default 15)")
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one)")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait until the load average is at most this")
    parser.add_argument("--patience", type=float, default=1800, help="seconds to wait for a quiet machine")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    parser.add_argument("--output", type=Path, default=RESULTS / "overhead.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    load = wait_for_quiet(args.max_load, args.patience)
    cpu = pin(args.cpu)
    started = time.monotonic()
    figures = report(bench_logging(args.calls, args.rounds), bench_extract(args.calls, args.rounds))
    result = {
        "benchmark": "overhead",
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "nproc": os.cpu_count(),
        "pinned_to_cpu": cpu,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": round(load, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "calls": args.calls,
        "rounds": args.rounds,
        "run_seconds": round(time.monotonic() - started, 1),
        **figures,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key}: {json.dumps(value)}")
        print(f"(pinned to CPU {cpu}; load average {load:.2f} at start; {args.rounds} rounds x {args.calls} calls)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
