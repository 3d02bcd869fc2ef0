"""What otel-openreplay costs the application: a logging call, and a request's header extraction.

Every figure is a ratio measured side by side in one run (variants interleaved, median of rounds),
so the machine's speed cancels out. Run::

    .venv/bin/python benchmarks/overhead.py            # prints a table; --json for machine output

Logging: stdlib ``logger.error`` through OpenTelemetry's logging handler into a LoggerProvider whose
export path is a BatchLogRecordProcessor with an exporter that drops everything, with
  * no enrichment (baseline),
  * ``OpenReplayLogProcessor`` first,
  * contrib's ``BaggageLogProcessor`` (all keys) first,
each with and without a current session.
Extraction: the global propagator (tracecontext + baggage) with and without ours appended, on a
WSGI environ read through the WSGI instrumentation's getter, with and without a session header.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageLogProcessor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_openreplay.processor import OpenReplayLogProcessor
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import Session, with_session
from otel_openreplay.settings import Settings

TOKEN = "1bq7y3xsc6hdc.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"


class DropExporter(LogRecordExporter):
    def export(self, batch: Sequence[object]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def logging_variant(enrichment: object | None) -> tuple[logging.Logger, LoggerProvider]:
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


def time_per_call(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def interleaved(variants: dict[str, Callable[[], None]], calls: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(time_per_call(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_logging(calls: int, rounds: int) -> dict[str, float]:
    settings = Settings.from_env({})
    loggers = {
        "baseline": logging_variant(None),
        "openreplay": logging_variant(OpenReplayLogProcessor(settings)),
        "baggage": logging_variant(BaggageLogProcessor(ALLOW_ALL_BAGGAGE_KEYS)),
    }
    results: dict[str, float] = {}
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


def bench_extract(calls: int, rounds: int) -> dict[str, float]:
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


def report(log: dict[str, float], extract: dict[str, float]) -> dict[str, object]:
    out: dict[str, object] = {
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}"
    }
    for suffix in ("no-session", "session"):
        base = log[f"baseline/{suffix}"]
        ours_added = log[f"openreplay/{suffix}"] - base
        baggage_added = log[f"baggage/{suffix}"] - base
        out[f"log {suffix}"] = {
            "ns per call (baseline, openreplay, baggage)": [
                round(base),
                round(log[f"openreplay/{suffix}"]),
                round(log[f"baggage/{suffix}"]),
            ],
            "whole path vs baseline (target <= 1.05)": round(log[f"openreplay/{suffix}"] / base, 3),
            "added cost vs BaggageLogProcessor's (target <= 0.5)": round(ours_added / baggage_added, 3)
            if baggage_added > 0
            else None,
        }
    for suffix, target in (("header", 1.25), ("no-header", 1.03)):
        out[f"extract {suffix}"] = {
            "ns per call (plain, with openreplay)": [
                round(extract[f"plain/{suffix}"]),
                round(extract[f"openreplay/{suffix}"]),
            ],
            f"ratio (target <= {target})": round(extract[f"openreplay/{suffix}"] / extract[f"plain/{suffix}"], 3),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement (default 20000)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds; the median is kept (default 9)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    result = report(bench_logging(args.calls, args.rounds), bench_extract(args.calls, args.rounds))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
