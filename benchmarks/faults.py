"""Run the fault tests (tests/test_faults.py) and put their figures in one table and one JSON file.

Each fault test prints one ``FAULT-RESULT {json}`` line (records sent, acknowledged by the collector, found in
Elasticsearch, duplicated, lost, and the fault's own figures) and asserts on the counts. This script runs
them with pytest, collects those lines, each test's outcome and duration (from pytest's JUnit XML), and
prints::

    fault                                   outcome  seconds   sent  acked  found  dup  lost  notes

then writes ``benchmarks/results/faults.json`` with the machine, the load average and the date. Run::

    .venv/bin/python benchmarks/faults.py                 # every fault test, slow ones included (~6 min)
    .venv/bin/python benchmarks/faults.py -m "e2e and not slow"   # only those CI runs
    .venv/bin/python benchmarks/faults.py -k sigkill      # extra arguments go to pytest
    .venv/bin/python benchmarks/faults.py -m "e2e and slow" -k block --merge   # re-run some, keep the others

``--merge`` replaces, in the existing results file, the rows of the tests that ran and keeps every other
row as it was, each marked with the date of the run that measured it (``from_run``).

What it must never do: change what the tests assert or hide a failure (its exit status is pytest's); write
anything but its results file; run on a busy machine without saying so (it waits for the load average to
drop to ``--max-load``, and records it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import machine, wait_for_quiet

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TESTS = "tests/test_faults.py"
MARK = "FAULT-RESULT "


def run_pytest(extra: Sequence[str], junit: Path) -> tuple[int, str]:
    """Run the fault tests (output streamed to our stderr) and return pytest's status and its stdout."""
    command = [sys.executable, "-m", "pytest", TESTS, "-s", "-v", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    command += extra
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        sys.stderr.write(line)
    return process.wait(), "".join(lines)


def outcomes(junit: Path) -> dict[str, dict[str, Any]]:
    """Per test name: ``outcome`` (passed / failed / error / skipped) and ``seconds``, from JUnit XML."""
    found: dict[str, dict[str, Any]] = {}
    if not junit.is_file():
        return found
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 (our own file)
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = "failed" if tag == "failure" else tag
        found[case.get("name", "?")] = {"outcome": outcome, "seconds": round(float(case.get("time", 0)), 1)}
    return found


def results_of(stdout: str) -> list[dict[str, Any]]:
    """Every ``FAULT-RESULT`` line's figures, with the name of the test that printed it."""
    found = []
    test = ""
    for line in stdout.splitlines():
        if "::test_" in line:
            test = line.split("::", 1)[1].split()[0]
        if line.startswith(MARK):
            figures = json.loads(line[len(MARK) :])
            figures.setdefault("test", test)
            found.append(figures)
    return found


def notes(figures: dict[str, Any]) -> str:
    """The fault's own figures, short."""
    skip = {"fault", "test", "sent", "acknowledged", "found", "duplicated", "lost", "outcome", "seconds"}
    return "; ".join(f"{key} {json.dumps(value)}" for key, value in figures.items() if key not in skip)


def print_table(rows: list[dict[str, Any]]) -> None:
    layout = "{:<40} {:<8} {:>7} {:>6} {:>6} {:>6} {:>4} {:>5}  {}"
    print(layout.format("fault", "outcome", "seconds", "sent", "acked", "found", "dup", "lost", "notes"))
    for row in rows:
        acked = "n/a" if row.get("acknowledged") is None else row["acknowledged"]
        print(
            layout.format(
                row["fault"][:40],
                row.get("outcome", "?"),
                row.get("seconds", "?"),
                row.get("sent", "?"),
                acked,
                row.get("found", "?"),
                row.get("duplicated", "?"),
                row.get("lost", "?"),
                notes(row),
            )
        )


def merged(earlier: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The earlier run's rows, each replaced by this run's row of the same test (new tests appended);
    rows kept from the earlier run say when they were measured (``from_run``)."""
    fresh = {row["test"]: row for row in rows}
    date = earlier.get("machine", {}).get("date", "?")
    result = []
    for row in earlier.get("faults", []):
        if row.get("test") in fresh:
            result.append(fresh.pop(row["test"]))
        else:
            result.append({**row, "from_run": row.get("from_run", date)})
    return result + list(fresh.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", dest="markers", default="e2e", help='pytest marker expression (default "e2e")')
    parser.add_argument("--max-load", type=float, default=1.5, help="wait until the load average is at most this")
    parser.add_argument("--patience", type=float, default=1800, help="seconds to wait for a quiet machine")
    parser.add_argument("--output", type=Path, default=RESULTS / "faults.json", help="where the JSON goes")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other tests' rows of the existing results file (their date kept)"
    )
    args, extra = parser.parse_known_args(argv)
    load = wait_for_quiet(args.max_load, args.patience, who="faults")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="otelor-faults-") as scratch:
        junit = Path(scratch) / "junit.xml"
        status, stdout = run_pytest(["-m", args.markers, *extra], junit)
        per_test = outcomes(junit)
    rows = results_of(stdout)
    for row in rows:
        row.update(per_test.get(row["test"], {}))
    reported = {row["test"] for row in rows}
    for name, outcome in per_test.items():
        if name not in reported and name.startswith("test_") and "judge" not in name:
            rows.append({"fault": name, "test": name, **outcome})  # failed before its summary line
    if args.merge and args.output.is_file():
        rows = merged(json.loads(args.output.read_text()), rows)
    print()
    print_table(rows)
    result = {
        "benchmark": "faults",
        "command": "benchmarks/faults.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": asdict(machine()),
        "load_average_at_start": round(load, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "pytest_status": status,
        "run_seconds": round(time.monotonic() - started, 1),
        "faults": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {args.output}; pytest exit status {status}; {result['run_seconds']} s")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
