"""Where the time above the floor goes: the pieces of a header extraction and of a tagged record, timed alone.

``overhead.py`` gives the ratios; this profile explains what remains between ours and the floor, piece
by piece, in the calling thread's CPU time (the fastest of ``--rounds`` runs of ``--calls`` calls
each, pinned to one CPU). Run::

    .venv/bin/python benchmarks/pieces.py

What it must never do: be read as a target (it has none), or time anything ``overhead.py`` does not run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import baggage, context
from opentelemetry.propagators.textmap import default_getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead

from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.session import CONTEXT_KEY, SESSION_ID_KEY, TOKEN_KEY, Session, with_session
from otel_openreplay.settings import Settings


def pieces() -> dict[str, Callable[[], Any]]:
    ctx = TraceContextTextMapPropagator().extract({"traceparent": overhead.TRACEPARENT})
    session = overhead.SESSION
    ours = OpenReplayPropagator(Settings.from_env({}))
    floor = overhead.FloorPropagator()
    _, without, with_header = overhead.carriers()["mapping"]
    token, session_id = overhead.TOKEN, overhead.SESSION_ID
    return {
        "floor extract, plain mapping, header": lambda: floor.extract(with_header, ctx, default_getter),
        "ours extract, plain mapping, header": lambda: ours.extract(with_header, ctx, default_getter),
        "floor extract, plain mapping, no header": lambda: floor.extract(without, ctx, default_getter),
        "ours extract, plain mapping, no header": lambda: ours.extract(without, ctx, default_getter),
        "DefaultGetter.get, a hit (the floor's read)": lambda: default_getter.get(with_header, overhead.HEADER),
        "two baggage.set_baggage (the floor's writes)": lambda: baggage.set_baggage(
            SESSION_ID_KEY, session_id, baggage.set_baggage(TOKEN_KEY, token, ctx)
        ),
        "with_session (the same + the package's own key)": lambda: with_session(session, ctx),
        "context.set_value of that key alone": lambda: context.set_value(CONTEXT_KEY, session, ctx),
        "Session.of, a cached session": lambda: Session.of(token, None),
        "the session from a log record's context": lambda: ctx.get(CONTEXT_KEY),
        "baggage.get_all + validation (a session in baggage only)": lambda: Session.of(
            baggage.get_all(ctx).get(TOKEN_KEY) or token, baggage.get_all(ctx).get(SESSION_ID_KEY)
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the last one)")
    args = parser.parse_args(argv)
    overhead.pin(args.cpu)
    timed = pieces()
    samples: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name, piece in timed.items():
            start = time.thread_time_ns()
            for _ in range(args.calls):
                piece()
            samples[name].append((time.thread_time_ns() - start) / args.calls)
    for name, values in samples.items():
        print(f"{name:58} {min(values):6.0f} ns  (median {statistics.median(values):.0f})")
    print(f"(load average {os.getloadavg()[0]:.2f}; fastest of {args.rounds} runs of {args.calls} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
