"""Faults the pipeline survives, with real processes: what was sent, acknowledged, found, and duplicated.

Every test runs the real collector (collector/otelcol-openreplay.yaml), a real Elasticsearch 8.19.21 and
the real OpenTelemetry SDK, injects one fault mid-stream, and then counts, by each record's sequence
number, what reached Elasticsearch. Each prints ONE summary line, ``FAULT-RESULT {json}`` (sent,
acknowledged, found, duplicated, lost and the fault's own figures; ``benchmarks/faults.py`` collects these
lines into a table) and asserts on the counts:

- Elasticsearch stopped for 60 s mid-stream, then started: nothing lost or duplicated; the out-of-order
  pairs (a record indexed after a newer one, which OpenReplay ≤ 1.20's poller can skip) are counted;
- the collector SIGKILLed mid-stream and restarted (persistent queue): no acknowledged record lost;
- Elasticsearch answering 429 (2-slot write queue under concurrent bulk pressure): retried, nothing lost;
- an index block held 20 s (the flood-stage ``read_only_allow_delete``, per item 429; ``index.blocks.write``,
  per item 403), through the collector AND through the direct Python exporter: nothing stored while
  blocked, then every record once; the direct exporter warns once, naming the block (``slow``);
- a document Elasticsearch rejects (mapping conflict): reported in the collector's log with its reason,
  the rest arrive;
- a two-node cluster with one node killed mid-stream: nothing lost (the exporter lists both nodes);
- the collector down entirely: the app's request latency, and what the SDK's bounded queue drops;
- 10,000 generated header values sent to a real app: no forged or broken prefix, no exception, every
  request answered.

"Acknowledged" means the OTLP export that carried the record returned success: the collector persisted it
in its queue (fsync) before answering. The direct exporter has no such answer (it returns FAILURE for the
records it keeps in its backlog), so for it acknowledged is None and lost is every sent record not found.
Timing figures are reported, never asserted (the machine may be shared), except as a guard against the app
blocking on export.

All are ``e2e``, and CI runs them all (about 9 minutes). The FastAPI (uvicorn) run of the header test (it
repeats the Flask run's 10,000 requests against an ASGI server) and the four block tests (about 45 s each)
are also ``slow``, so they can be left out locally: run them with ``pytest -m slow tests/test_faults.py`` or
``benchmarks/faults.py``.

It must never stop, kill or reconfigure the shared ``es_node`` (the tests that stop or kill Elasticsearch
start their own nodes; the block tests block only their own index), never signal a process it did not
start, and never read another test's documents: each test writes its own index or its own ``service.name``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from elasticsearch import Elasticsearch, helpers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry import context
from opentelemetry._logs import SeverityNumber
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_openreplay import configure
from otel_openreplay.exporter import ElasticsearchLogExporter
from otel_openreplay.propagator import OpenReplayPropagator
from otel_openreplay.template import setup_index
from tests.apps import App
from tests.conftest import TOKEN, LogPipeline
from tests.stack import collector as stack
from tests.stack import es

RESULT_MARK = "FAULT-RESULT"
"""Start of each test's one summary line (read by benchmarks/faults.py)."""

OUTAGE_S = 60
"""How long Elasticsearch stays stopped in the outage test."""

HEADER_EXAMPLES = int(os.environ.get("OTEL_OPENREPLAY_FAULTS_HEADER_EXAMPLES", "10000"))
"""Generated header sets sent to the real app (override the 10,000 for a quick local run)."""

CHECKOUT_ERROR = "payment declined: card 4242 expired"
"""The error record the example apps' ``/checkout`` logs."""

# --- the stream: numbered error records from the real SDK, with acknowledgements ---------------------------


class AckingExporter(LogRecordExporter):
    """Wraps the OTLP exporter and notes, per record, whether the export that carried it succeeded."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.acked: set[int] = set()
        self.failed: set[int] = set()
        self._lock = threading.Lock()

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        numbers = {seq for item in batch if (seq := sequence_of(str(item.log_record.body))) is not None}
        with self._lock:
            (self.acked if result == LogRecordExportResult.SUCCESS else self.failed).update(numbers)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_SEQ = re.compile(r" record (\d{6})\b")


def sequence_of(message: str) -> int | None:
    """The sequence number a stream wrote into a record's message, or None."""
    found = _SEQ.search(message)
    return int(found.group(1)) if found else None


EXCEPTION_ATTRIBUTES = {
    "exception.type": "TimeoutError",
    "exception.message": "upstream timed out",
    "exception.stacktrace": (
        'Traceback (most recent call last):\n  File "shop.py", line 1\nTimeoutError: upstream timed out\n'
    ),
}


class Stream:
    """Error records ``<service> record 000042`` logged at ``rate`` per second from a thread, exported by the
    SDK's BatchLogRecordProcessor over OTLP/gRPC to ``grpc_endpoint`` (or by ``exporter``: the direct
    Elasticsearch exporter). Every ``exception_every``-th record (if set) carries an exception, as a record
    logged with ``exc_info`` does. With ``limit``, the thread stops after that many records."""

    def __init__(
        self,
        grpc_endpoint: str | None,
        *,
        rate: float,
        exception_every: int = 0,
        exporter: LogRecordExporter | None = None,
        limit: int | None = None,
    ) -> None:
        self.service = f"faults-{secrets.token_hex(4)}"
        self.rate = rate
        self.exception_every = exception_every
        self.limit = limit
        if exporter is None:
            exporter = OTLPLogExporter(endpoint=grpc_endpoint, insecure=True)
        self.exporter = AckingExporter(exporter)
        self.provider = LoggerProvider(resource=Resource.create({"service.name": self.service}), shutdown_on_exit=False)
        self.provider.add_log_record_processor(BatchLogRecordProcessor(self.exporter, schedule_delay_millis=200))
        self.logger = self.provider.get_logger("shop.checkout")
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.service}", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and (self.limit is None or self.sent < self.limit):
            seq = self.sent
            attributes = EXCEPTION_ATTRIBUTES if self.exception_every and seq % self.exception_every == 0 else {}
            self.logger.emit(
                body=f"{self.service} record {seq:06d}",
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                attributes={"openReplaySession.id": "7297413432396165", **attributes},
            )
            self.sent += 1
            pause = started + self.sent / self.rate - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def wait_done(self, timeout: float) -> None:
        """Wait until the thread has logged its ``limit`` records."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream logged {self.sent} records in {timeout:.0f} s"

    def stop(self) -> None:
        """Stop logging and export everything still queued (returns when each batch succeeded or failed)."""
        self._stop.set()
        self._thread.join()
        self.provider.force_flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.provider.shutdown()

    @property
    def acked(self) -> set[int]:
        return set(self.exporter.acked)

    def with_exception(self) -> set[int]:
        """Sequence numbers of the records that carried an exception."""
        if not self.exception_every:
            return set()
        return {seq for seq in range(self.sent) if seq % self.exception_every == 0}


@contextlib.contextmanager
def streaming(grpc_endpoint: str | None, *, rate: float, **options: Any) -> Iterator[Stream]:
    stream = Stream(grpc_endpoint, rate=rate, **options)
    try:
        yield stream.start()
    finally:
        stream.close()


# --- reading back --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """One stored document of a stream: its sequence number, record time (ms) and indexing order."""

    seq: int
    utc_time: str
    seq_no: int


def stored(client: Elasticsearch, index: str, service: str) -> list[Stored]:
    """Every document of ``service`` in ``index`` (after a refresh), in indexing order (``_seq_no``: one shard)."""
    client.indices.refresh(index=index)
    hits = helpers.scan(
        client,
        index=index,
        query={"query": {"term": {"service.name": service}}, "seq_no_primary_term": True},
        _source=["message", "utc_time"],
    )
    found = []
    for hit in hits:
        seq = sequence_of(hit["_source"]["message"])
        assert seq is not None, hit["_source"]["message"]
        found.append(Stored(seq, hit["_source"]["utc_time"], int(hit["_seq_no"])))
    return sorted(found, key=lambda doc: doc.seq_no)


def wait_for_records(
    client: Elasticsearch, index: str, service: str, wanted: set[int], timeout: float = 120.0
) -> list[Stored]:
    """Wait until every sequence number in ``wanted`` is stored (or ``timeout``), then 2 s more for any
    late duplicate; return what is stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a node may still be failing over
            if wanted <= {doc.seq for doc in stored(client, index, service)}:
                break
        time.sleep(0.5)
    time.sleep(2)
    return stored(client, index, service)


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            result = probe()
            if result:
                return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def duplicates(docs: Sequence[Stored]) -> int:
    """Documents beyond the first of each sequence number."""
    return len(docs) - len({doc.seq for doc in docs})


def out_of_order(docs: Sequence[Stored]) -> dict[str, Any]:
    """How the indexing order (``_seq_no``) disagrees with the records' own times (``utc_time``).

    ``pairs``: pairs indexed in the opposite order of their times (ties not counted); ``behind_newer``:
    documents indexed after a document with a later time (OpenReplay ≤ 1.20 polls from the newest time it
    saw + 1 s, so such a document is skipped if a poll ran in between); ``behind_by_more_than_1s``: those
    more than 1 s older than the newest already indexed; ``max_lag_ms``: the largest such gap.
    """
    times = [_epoch_ms(doc.utc_time) for doc in docs]
    newest = -1
    behind = behind_1s = max_lag = 0
    for value in times:
        if value < newest:
            behind += 1
            behind_1s += newest - value > 1000
            max_lag = max(max_lag, newest - value)
        newest = max(newest, value)
    return {
        "pairs": _inversions(times),
        "behind_newer": behind,
        "behind_by_more_than_1s": behind_1s,
        "max_lag_ms": max_lag,
    }


def _epoch_ms(rfc3339: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def _inversions(values: list[int]) -> int:
    """Pairs i < j with values[i] > values[j] (merge sort, O(n log n))."""

    def sort(items: list[int]) -> tuple[list[int], int]:
        if len(items) <= 1:
            return items, 0
        middle = len(items) // 2
        left, a = sort(items[:middle])
        right, b = sort(items[middle:])
        merged: list[int] = []
        count, i, j = a + b, 0, 0
        while i < len(left) and j < len(right):
            if right[j] < left[i]:
                merged.append(right[j])
                count += len(left) - i
                j += 1
            else:
                merged.append(left[i])
                i += 1
        merged += left[i:] + right[j:]
        return merged, count

    return sort(values)[1]


def report(fault: str, **figures: Any) -> dict[str, Any]:
    """Print the test's one summary line and return its figures."""
    line = {"fault": fault, **figures}
    print(f"\n{RESULT_MARK} {json.dumps(line, sort_keys=False)}", flush=True)
    return line


def counts(stream: Stream, docs: Sequence[Stored], *, acknowledging: bool = True) -> dict[str, int | None]:
    """sent / acknowledged / found / duplicated / lost (acknowledged but not found).

    ``acknowledging=False`` for an exporter whose success does not mean "stored or safely queued" (the
    direct exporter answers FAILURE for records it keeps in its backlog): acknowledged is then None and
    lost counts every sent record not found."""
    found = {doc.seq for doc in docs}
    return {
        "sent": stream.sent,
        "acknowledged": len(stream.acked) if acknowledging else None,
        "found": len(found),
        "duplicated": duplicates(docs),
        "lost": len((stream.acked if acknowledging else set(range(stream.sent))) - found),
    }


# --- the collector and Elasticsearch --------------------------------------------------------------------------


def exporter_name(config: Path = stack.CONFIG) -> str:
    """The Elasticsearch exporter's id in the shipped config (``elasticsearch`` or ``elasticsearch/<name>``)."""
    section = config.read_text().split("\nexporters:", 1)[1]
    found = re.search(r"^  (elasticsearch(?:/[\w.-]+)?):\s*$", section, flags=re.MULTILINE)
    assert found, "no elasticsearch exporter in the shipped config"
    return found.group(1)


def overlay(path: Path, text: str) -> Path:
    """Write a config overlay (merged after the shipped config with a second ``--config``)."""
    path.write_text(text)
    return path


def metrics_overlay(path: Path, port: int) -> Path:
    """The collector's own metrics (off in the shipped config) on a Prometheus endpoint at ``port``."""
    lines = [
        "service:",
        "  telemetry:",
        "    metrics:",
        "      level: detailed",
        "      readers:",
        "        - pull:",
        "            exporter:",
        "              prometheus:",
        "                host: 127.0.0.1",
        f"                port: {port}",
    ]
    return overlay(path, "\n".join(lines) + "\n")


def scrape(port: int) -> dict[str, float]:
    """Prometheus text from the collector, summed per metric name (labels dropped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, _, value = line.rpartition(" ")
            totals[name_labels.split("{", 1)[0]] += float(value)
    return dict(totals)


def es_env(endpoint: Any, index: str) -> dict[str, str]:
    return {
        "OPENREPLAY_ES_URL": endpoint.url,
        "OPENREPLAY_ES_USER": endpoint.user,
        "OPENREPLAY_ES_PASSWORD": endpoint.password,
        "OPENREPLAY_ES_INDEX": index,
    }


REASONS = {"OPENREPLAY_ES_INCLUDE_SOURCE_ON_ERROR": "false"}
"""Collector env that logs why Elasticsearch (>= 8.18) refused a document, without its source."""


def new_index(client: Elasticsearch, name: str) -> str:
    index = f"faults-{name}-{secrets.token_hex(3)}"
    setup_index(client, index)
    return index


@pytest.fixture(scope="module")
def binary() -> Path:
    return stack.build()


# --- Elasticsearch stopped for a minute --------------------------------------------------------------------


@pytest.mark.e2e
def test_elasticsearch_stopped_for_a_minute_loses_and_duplicates_nothing(binary: Path) -> None:
    """Elasticsearch stopped 60 s while records keep coming: each arrives once; the arrival order is counted."""
    with es.ElasticsearchNode() as node:
        with contextlib.closing(es.client(node)) as admin:
            index = new_index(admin, "outage")
        with (
            stack.Collector(env=es_env(node, index), binary=binary) as collector,
            streaming(collector.grpc_endpoint, rate=50) as stream,
        ):
            with contextlib.closing(es.client(node)) as admin:
                wait_until("the first records", lambda: stored(admin, index, stream.service))
            node.stop()
            stopped_at = time.monotonic()
            sent_before = stream.sent
            time.sleep(OUTAGE_S)
            node.start()
            node.wait_ready()
            outage = time.monotonic() - stopped_at
            sent_during = stream.sent - sent_before
            time.sleep(5)
            stream.stop()
            with contextlib.closing(es.client(node)) as admin:
                docs = wait_for_records(admin, index, stream.service, set(range(stream.sent)), timeout=180)
            figures = counts(stream, docs)
    order = out_of_order(docs)
    report(
        "Elasticsearch stopped 60 s",
        **figures,
        outage_s=round(outage, 1),
        sent_during_outage=sent_during,
        out_of_order=order,
    )
    assert figures["acknowledged"] == figures["sent"]
    assert figures["found"] == figures["sent"]
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0


# --- collector SIGKILLed mid-stream ------------------------------------------------------------------------


@pytest.mark.e2e
def test_collector_sigkilled_mid_stream_loses_no_acknowledged_record(
    binary: Path, es_node: es.ElasticsearchNode
) -> None:
    """kill -9 of the collector under a 200 records/s stream, restarted 2 s later on the same queue directory."""
    with contextlib.closing(es.client(es_node)) as admin:
        index = new_index(admin, "sigkill")
        collector = stack.Collector(env=es_env(es_node, index), binary=binary)
        try:
            collector.start()
            collector.wait_ready()
            with streaming(collector.grpc_endpoint, rate=200) as stream:
                wait_until("the first records", lambda: stored(admin, index, stream.service))
                time.sleep(2)
                acked_before_kill = len(stream.acked)
                collector.kill()
                time.sleep(2)
                collector.start()
                collector.wait_ready()
                time.sleep(5)
                stream.stop()
                docs = wait_for_records(admin, index, stream.service, stream.acked)
                figures = counts(stream, docs)
                not_acked = stream.sent - len(stream.acked)
        finally:
            collector.remove()
    report(
        "collector SIGKILL mid-stream",
        **figures,
        acknowledged_before_kill=acked_before_kill,
        not_acknowledged=not_acked,
        found_not_acknowledged=len({d.seq for d in docs} - stream.acked),
    )
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["acknowledged"] > acked_before_kill  # the stream really went on through the restart


# --- Elasticsearch answering 429 ---------------------------------------------------------------------------


class BulkPressure:
    """``threads`` clients sending 500-document ``_bulk`` requests into their own index until stopped."""

    def __init__(self, node: es.ElasticsearchNode, threads: int = 16) -> None:
        self.node = node
        self.index = f"pressure-{secrets.token_hex(3)}"
        self.requests = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._operations: list[dict[str, Any]] = [{"index": {}}, {"message": "filler " * 20, "n": 1}] * 500

    def _run(self) -> None:
        with contextlib.closing(es.client(self.node, max_retries=0)) as client:
            while not self._stop.is_set():
                with contextlib.suppress(Exception):  # 429 for the whole request: keep pushing
                    client.bulk(index=self.index, operations=self._operations)
                    self.requests += 1

    def __enter__(self) -> BulkPressure:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


@pytest.mark.e2e
def test_429_back_pressure_is_retried_and_loses_nothing(binary: Path, tmp_path: Path) -> None:
    """A node with a 2-slot write queue under 16 concurrent bulk writers answers 429; the collector retries."""
    port = stack.free_ports(1)[0]
    busy = {"thread_pool.write.queue_size": 2, "thread_pool.write.size": 1}
    configs = [stack.CONFIG, metrics_overlay(tmp_path / "metrics.yaml", port)]
    with es.ElasticsearchNode(settings=busy) as node, contextlib.closing(es.client(node)) as admin:
        index = new_index(admin, "429")
        with stack.Collector(configs, es_env(node, index), binary=binary) as collector:
            with streaming(collector.grpc_endpoint, rate=200) as stream, BulkPressure(node) as pressure:
                time.sleep(15)
                stream.stop()
            docs = wait_for_records(admin, index, stream.service, set(range(stream.sent)))
            telemetry = scrape(port)
        pool = admin.nodes.stats(metric="thread_pool")["nodes"]
        rejected = sum(n["thread_pool"]["write"]["rejected"] for n in pool.values())
    figures = counts(stream, docs)
    retried = telemetry.get("otelcol_elasticsearch_docs_retried", 0) + telemetry.get(
        "otelcol_elasticsearch_docs_retried_http_request", 0
    )
    report(
        "Elasticsearch answering 429",
        **figures,
        es_write_rejections=rejected,
        collector_docs_retried=int(retried),
        pressure_bulk_requests_accepted=pressure.requests,
    )
    assert rejected > 0, "no 429 at all: the test proved nothing"
    assert retried > 0, "the collector never met a 429: the test proved nothing"
    assert figures["found"] == figures["sent"] == figures["acknowledged"]
    assert figures["duplicated"] == 0


# --- an index block held for 20 s ---------------------------------------------------------------------------

BLOCKS = {
    # What the flood-stage disk watermark puts on an index: every write refused per item, 429 (8.x).
    "flood-stage": "index.blocks.read_only_allow_delete",
    # What an operator or a lifecycle step puts: every write refused per item, 403.
    "write": "index.blocks.write",
}
"""Each index block the tests hold, by name, and the index setting that makes it."""

BLOCK_RECORDS, BLOCK_RATE, BLOCK_HELD_S = 600, 20, 20
"""600 error records over 30 s, the block held for 20 s in the middle."""

BLOCK_WARNINGS = {"flood-stage": "read-only-allow-delete block", "write": "write block (index.blocks.write)"}
"""What the direct exporter's one warning names, per block."""

ABOVE_HIGH_WATERMARK = {
    "cluster.info.update.interval": "1h",
    "cluster.routing.allocation.disk.watermark.low": "1000tb",
    "cluster.routing.allocation.disk.watermark.high": "1000tb",
    "cluster.routing.allocation.disk.watermark.flood_stage": "1b",
}
"""A node that keeps a hand-set flood-stage block until it is lifted, as a full disk does. Elasticsearch
>= 7.4 lifts a ``read_only_allow_delete`` block by itself at a disk check that finds use below the high
watermark: on a node with room to spare, a block set by hand was gone within the 20 s here. So the disk
checks (which run at start-up, then every ``cluster.info.update.interval``) are an hour apart, and the
watermarks say the disk is past the high watermark but below the flood stage (free space is measured
against these sizes: Elasticsearch neither adds nor lifts a block)."""


@pytest.fixture(scope="module")
def full_disk_node() -> Iterator[es.ElasticsearchNode]:
    with es.ElasticsearchNode(settings=ABOVE_HIGH_WATERMARK) as node:
        yield node


def block_is_set(client: Elasticsearch, index: str, setting: str) -> bool:
    """Whether ``setting`` is true on ``index`` (on every index behind it, if it is an alias)."""
    answer = client.indices.get_settings(index=index, name=setting, flat_settings=True).body
    return bool(answer) and all(str(one["settings"].get(setting)) == "true" for one in answer.values())


@contextlib.contextmanager
def block_stream(path: str, node: es.ElasticsearchNode, index: str, request: pytest.FixtureRequest) -> Iterator[Stream]:
    """A limited stream into ``index``: through the shipped collector config, or the direct exporter."""
    options: dict[str, Any] = {"rate": BLOCK_RATE, "limit": BLOCK_RECORDS}
    if path == "collector":
        binary = request.getfixturevalue("binary")
        with (
            stack.Collector(env=es_env(node, index), binary=binary) as collector,
            streaming(collector.grpc_endpoint, **options) as stream,
        ):
            yield stream
    else:
        exporter = ElasticsearchLogExporter(environ=es_env(node, index))
        with streaming(None, exporter=exporter, **options) as stream:
            yield stream


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("block", list(BLOCKS))
@pytest.mark.parametrize("path", ["collector", "exporter"])
def test_index_block_held_20s_loses_and_duplicates_nothing(
    path: str, block: str, request: pytest.FixtureRequest, caplog: Any
) -> None:
    """600 error records over 30 s while the index carries a block for 20 s (set and lifted with the settings
    API, as Elasticsearch and operators do), through the shipped collector config or the direct exporter:
    nothing stored while blocked, then every record exactly once. The direct exporter logs one warning
    naming the block, no rejection and no mapping advice, and one line when it writes again."""
    setting = BLOCKS[block]
    es_node = request.getfixturevalue("full_disk_node" if block == "flood-stage" else "es_node")
    with contextlib.closing(es.client(es_node)) as admin:
        index = new_index(admin, f"block-{path}")
        with (
            caplog.at_level(logging.INFO, logger="otel_openreplay.exporter"),
            block_stream(path, es_node, index, request) as stream,
        ):
            wait_until("the first records", lambda: stored(admin, index, stream.service))
            admin.indices.put_settings(index=index, settings={setting: True})
            sent_at_block = stream.sent
            time.sleep(1)  # a bulk request taken before the block was set may still be finishing
            stored_at_block = len(stored(admin, index, stream.service))
            time.sleep(BLOCK_HELD_S - 1)
            stored_before_lift = len(stored(admin, index, stream.service))
            held = block_is_set(admin, index, setting)
            admin.indices.put_settings(index=index, settings={setting: None})
            sent_during_block = stream.sent - sent_at_block
            stream.wait_done(timeout=120)
            stream.stop()
            # Found while the exporter still runs: written after the lift, not at shutdown.
            docs = wait_for_records(admin, index, stream.service, set(range(stream.sent)))
            figures = counts(stream, docs, acknowledging=path == "collector")
    own = [r for r in caplog.records if r.name == "otel_openreplay.exporter"]
    warnings = [r.getMessage() for r in own if r.levelno == logging.WARNING]
    errors = [r.getMessage() for r in own if r.levelno >= logging.ERROR]
    written_again = [r.getMessage() for r in own if r.levelno == logging.INFO and "written again" in r.getMessage()]
    report(
        f"index {block} block held {BLOCK_HELD_S} s ({path})",
        **figures,
        sent_during_block=sent_during_block,
        stored_during_block=stored_before_lift - stored_at_block,
        exporter_warnings=len(warnings),
        exporter_errors=len(errors),
    )
    assert held, f"{setting} was lifted before the test lifted it"
    assert sent_during_block > 0
    assert stored_before_lift == stored_at_block, "documents were stored while the index was blocked"
    assert figures["found"] == figures["sent"] == BLOCK_RECORDS
    assert figures["duplicated"] == 0
    assert figures["lost"] == 0
    if path == "collector":
        assert figures["acknowledged"] == figures["sent"]
        return
    assert len(warnings) == 1, warnings
    assert BLOCK_WARNINGS[block] in warnings[0]
    assert "mapping" not in warnings[0]
    assert not errors, errors
    (again,) = written_again
    assert re.search(r"written again, \d+ records kept during ", again), again


# --- a document Elasticsearch rejects ----------------------------------------------------------------------


def failed_documents(log: str) -> list[dict[str, Any]]:
    """The fields of every ``failed to index document`` line in the collector's log."""
    found = []
    for line in log.splitlines():
        if "failed to index document" in line and "{" in line:
            found.append(json.loads(line[line.index("{") :]))
    return found


@pytest.mark.e2e
def test_rejected_document_is_reported_with_its_reason_and_the_rest_arrive(
    binary: Path, es_node: es.ElasticsearchNode
) -> None:
    """An index shared with another app that logged ``error`` as a string: our documents with an ``error``
    object (records with an exception) are refused (mapping conflict), each reported in the collector's log
    with Elasticsearch's reason; all others arrive. (The collector samples its log: at most 10 lines of one
    message per 10 s, then every 100th; so fewer than 10 rejections are provoked, and all must be there.)"""
    index = f"faults-mapping-{secrets.token_hex(3)}"
    other_app = {"@timestamp": "2026-01-01T00:00:00.000Z", "message": "upstream timeout", "error": "timeout"}
    with contextlib.closing(es.client(es_node)) as admin:
        admin.index(index=index, document=other_app, refresh=True)  # dynamic mapping: `error` is text
        setup_index(admin, index)  # what a user runs; it cannot change `error` and says so
        with (
            # Elasticsearch >= 8.18 (es_node is 8.19): the setting that makes it send the reason.
            stack.Collector(env={**es_env(es_node, index), **REASONS}, binary=binary) as collector,
            streaming(collector.grpc_endpoint, rate=100, exception_every=60) as stream,
        ):
            time.sleep(5)
            stream.stop()
            refused = stream.with_exception()
            docs = wait_for_records(admin, index, stream.service, set(range(stream.sent)) - refused)
            reports = wait_until(
                "every rejection in the collector's log",
                lambda: len(rows := failed_documents(collector.log_text())) >= len(refused) and rows,
                timeout=30,
            )
    figures = counts(stream, docs)
    figures["lost"] = len(stream.acked - {doc.seq for doc in docs} - refused)  # refused ones are expected
    reasons = Counter(f"{row.get('error.type')}: {row.get('http.response.status_code')}" for row in reports)
    report(
        "document rejected (mapping conflict)",
        **figures,
        refused_by_elasticsearch=len(refused),
        reported_in_collector_log=len(reports),
        reasons=dict(reasons),
        example_reason=reports[0].get("error.reason", "")[:200],
    )
    found = {doc.seq for doc in docs}
    assert found == set(range(stream.sent)) - refused
    assert figures["acknowledged"] == figures["sent"]
    assert figures["duplicated"] == 0
    assert len(reports) == len(refused)
    assert all(row.get("http.response.status_code") == 400 for row in reports)
    # The reason names the field; OPENREPLAY_ES_INCLUDE_SOURCE_ON_ERROR=false asks for it (unset, the
    # exporter logs the error type only: tests/test_es_versions.py).
    assert all("[error]" in row.get("error.reason", "") for row in reports), reports[0]


# --- a two-node cluster losing a node ----------------------------------------------------------------------


@pytest.mark.e2e
def test_one_node_of_a_two_node_cluster_killed_loses_nothing(binary: Path, tmp_path: Path) -> None:
    """The exporter lists both nodes (``endpoints``, by an overlay config); the non-elected node is killed
    mid-stream (with two master-eligible nodes only one votes); the index has a replica."""
    with es.ElasticsearchCluster(2) as cluster, contextlib.closing(es.client(cluster)) as admin:
        index = new_index(admin, "cluster")
        admin.indices.put_settings(index=index, settings={"index.number_of_replicas": 1})
        admin.cluster.health(index=index, wait_for_status="green", timeout="60s")
        master = cast("list[dict[str, str]]", admin.cat.master(format="json").body)[0]["node"]
        (victim,) = (node for node in cluster.nodes if node.name != master)
        urls = ", ".join(node.url for node in cluster.nodes)
        lines = f'exporters:\n  {exporter_name()}:\n    endpoint: ""\n    endpoints: [{urls}]\n'
        configs = [stack.CONFIG, overlay(tmp_path / "endpoints.yaml", lines)]
        with stack.Collector(configs, es_env(cluster, index), binary=binary) as collector:
            with streaming(collector.grpc_endpoint, rate=100) as stream:
                wait_until("the first records", lambda: stored(admin, index, stream.service))
                time.sleep(2)
                victim.kill()
                sent_at_kill = stream.sent
                time.sleep(10)
                stream.stop()
            docs = wait_for_records(admin, index, stream.service, set(range(stream.sent)))
            figures = counts(stream, docs)
            health = admin.cluster.health(index=index)["status"]
    report(
        "one of two Elasticsearch nodes killed",
        **figures,
        killed=victim.name,
        elected_master=master,
        sent_before_kill=sent_at_kill,
        index_health_after=health,
    )
    assert figures["found"] == figures["sent"] == figures["acknowledged"]
    assert figures["duplicated"] == 0


# --- the collector down entirely ---------------------------------------------------------------------------


def timed_requests(session: requests.Session, url: str, session_id: str, count: int) -> list[float]:
    """``count`` GET ``/checkout`` with a session id header; each answered 402; their latencies in s."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        answer = session.get(f"{url}/checkout", headers={"openReplaySession.id": session_id}, timeout=30)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 402, answer.text
    return latencies


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def session_count(client: Elasticsearch, index: str, session_id: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index, query={"term": {"openReplaySession.id": session_id}})["count"])


def wait_stable(probe: Callable[[], int], quiet_s: float = 8.0, timeout: float = 90.0) -> int:
    """Poll ``probe`` until its value has not changed for ``quiet_s`` (or ``timeout``); return it."""
    value, since, deadline = probe(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = probe()
        if now != value:
            value, since = now, time.monotonic()
    return value


@pytest.mark.e2e
def test_collector_down_leaves_the_app_unaffected_and_counts_sdk_drops(
    binary: Path, es_node: es.ElasticsearchNode
) -> None:
    """The Flask example under opentelemetry-instrument exporting OTLP/HTTP with the SDK's defaults (queue
    2048, batch 512, 1 s schedule). Request latency with the collector up vs down; then, still down, more
    error records than the queue holds; the collector comes back: what arrived, what the SDK dropped."""
    up_sid, down_sid, burst_sid = (str(7_297_413_432_396_100 + n) for n in range(3))
    per_phase, burst = 300, 3000
    with contextlib.closing(es.client(es_node)) as admin:
        index = new_index(admin, "down")
        collector = stack.Collector(env=es_env(es_node, index), binary=binary)
        env = {
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.http_port}",
            "OTEL_BLRP_SCHEDULE_DELAY": "1000",  # the SDK's default (tests.apps lowers it)
        }
        try:
            collector.start()
            collector.wait_ready()
            with App("flask", env) as app, requests.Session() as client:
                timed_requests(client, app.url, up_sid, 50)  # warm up
                up = timed_requests(client, app.url, up_sid, per_phase)
                wait_until("the records logged while up", lambda: session_count(admin, index, up_sid) == per_phase + 50)
                collector.stop()
                down = timed_requests(client, app.url, down_sid, per_phase)
                down += timed_requests(client, app.url, burst_sid, burst)
                collector.start()
                collector.wait_ready()
                found_up = wait_stable(lambda: session_count(admin, index, up_sid))
                found_down = wait_stable(
                    lambda: session_count(admin, index, down_sid) + session_count(admin, index, burst_sid)
                )
        finally:
            collector.remove()
    sent_down = per_phase + burst
    p50_up, p99_up = percentile(up, 50), percentile(up, 99)
    p50_down, p99_down = percentile(down[:per_phase], 50), percentile(down[:per_phase], 99)
    report(
        "collector down (app side)",
        sent=sent_down,
        acknowledged=None,
        found=found_down,
        duplicated=0 if found_down <= sent_down else found_down - sent_down,
        lost=sent_down - found_down,
        sent_while_up=per_phase + 50,
        found_while_up=found_up,
        request_p50_ms={"up": round(p50_up * 1000, 2), "down": round(p50_down * 1000, 2)},
        request_p99_ms={"up": round(p99_up * 1000, 2), "down": round(p99_down * 1000, 2)},
        ratio_down_to_up={"p50": round(p50_down / p50_up, 2), "p99": round(p99_down / p99_up, 2)},
        request_max_ms_down=round(max(down) * 1000, 1),
        # Each request logs an INFO record too, sharing the queue: at most 2048 / 2 errors wait in it, plus
        # the batch (512 / 2) whose export may succeed on a retry after the collector is back.
        sdk_can_hold=2048 // 2 + 512 // 2,
    )
    assert found_up == per_phase + 50  # nothing lost while the collector was up
    assert 0 < found_down < sent_down  # some survived in the SDK's queue; the overflow was dropped
    # Request latency with the collector down is a figure (reported above, and in benchmarks/), not an assertion.


# --- hostile header values, through a real server -----------------------------------------------------------

PREFIX_AND_MESSAGE = re.compile(
    r"(?:\[openReplaySessionToken=([0-9A-Za-z._-]{1,256})\] )?(?:\[openReplaySession\.id=([0-9]{1,20})\] )?"
    + re.escape(CHECKOUT_ERROR)
)
VALID_TOKEN = re.compile(r"[0-9A-Za-z._-]{1,256}")
VALID_ID = re.compile(r"[0-9]{1,20}")
TOKEN_HEADERS = ["X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token", "x-openreplay-sessiontoken"]

nasty = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("]\r\n [=.-_aZ09é\x00\t;,%"), max_size=64),
    st.builds(lambda s: f"{s}] [openReplaySessionToken=forged", st.text(max_size=20)),
    st.builds(lambda s: f"abc.def] {s}", st.text(max_size=20)),
    st.builds(lambda s: f"{TOKEN}{s}", st.text(max_size=8)),
    st.builds(lambda char, n: char * n, st.sampled_from("x]é "), st.integers(9_000, 10_240)),
    st.from_regex(r"[0-9A-Za-z._-]{1,300}", fullmatch=True),
    st.from_regex(r"[0-9]{1,25}", fullmatch=True),
    st.just(TOKEN),
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "token": st.tuples(st.sampled_from(TOKEN_HEADERS), nasty),
        "id": nasty,
        "baggage": nasty,
    },
)


def baggage_values(header: str, key: str) -> set[str]:
    """Every value ``header`` (W3C baggage) could give ``key``: each list member, with and without its
    ``;`` properties, percent-decoded either way (a superset of what a parser reads: for the forged check)."""
    values: set[str] = set()
    for member in header.split(","):
        name, sep, rest = member.partition("=")
        if sep and urllib.parse.unquote_plus(name).strip() == key:
            for raw in (rest, rest.split(";", 1)[0]):
                values |= {urllib.parse.unquote_plus(raw).strip(), urllib.parse.unquote(raw).strip()}
    return values


def derived_id(token: str) -> str | None:
    first = token.split(".", 1)[0]
    if not re.fullmatch(r"[0-9A-Za-z]{1,13}", first):
        return None
    return str(int(first, 36))


def judge(body: str, sent: Mapping[str, Any]) -> str | None:
    """None when ``body`` is right for the headers ``sent``; else what is wrong (``broken`` / ``forged`` / ``missed``).

    broken: not exactly ``<valid prefix parts>message``; forged: a prefix value the client did not send (nor
    derive from a sent token); missed: a valid token header (and no baggage) that did not make it into the
    prefix.
    """
    shape = PREFIX_AND_MESSAGE.fullmatch(body)
    if shape is None or body.count("openReplaySessionToken=") > 1:
        return "broken"
    token, session_id = shape.groups()
    bag = sent.get("baggage_header", "")
    token_header = sent["token"][1] if "token" in sent else None
    tokens = baggage_values(bag, "openReplaySessionToken") | ({token_header.strip()} if token_header else set())
    if token is not None and token not in tokens:
        return "forged"
    ids = baggage_values(bag, "openReplaySession.id") | ({sent["id"].strip()} if "id" in sent else set())
    ids |= {derived for value in tokens if (derived := derived_id(value))}
    if session_id is not None and session_id not in ids:
        return "forged"
    stripped = token_header.strip(" \t") if token_header is not None else ""
    if "baggage" not in sent and VALID_TOKEN.fullmatch(stripped) and stripped.isascii() and token != stripped:
        return "missed"
    return None


def in_process_body(headers: Mapping[str, str]) -> str:
    """What our propagator + processor make of ``headers`` without a server (values no HTTP client sends)."""
    pipeline = LogPipeline()
    wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
    try:
        propagator = CompositePropagator([W3CBaggagePropagator(), OpenReplayPropagator()])
        token = context.attach(propagator.extract(dict(headers)))
        try:
            pipeline.provider.get_logger("shop.checkout").emit(body=CHECKOUT_ERROR, severity_text="ERROR")
        finally:
            context.detach(token)
        (record,) = pipeline.records()
    finally:
        wiring.undo()
        pipeline.provider.shutdown()
    return str(record.body)


def http_headers(sent: Mapping[str, Any], trace_number: int) -> dict[str, str]:
    headers = {"traceparent": f"00-{trace_number:032x}-00f067aa0ba902b7-01"}
    if "token" in sent:
        headers[sent["token"][0]] = sent["token"][1]
    if "id" in sent:
        headers["openReplaySession.id"] = sent["id"]
    if "baggage" in sent:
        headers["baggage"] = sent["baggage_header"]
    return headers


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["flask", pytest.param("fastapi", marks=pytest.mark.slow)])
def test_generated_header_values_through_a_real_app_forge_and_break_nothing(kind: str) -> None:
    """10,000 generated header sets (CR/LF, ``]``, spaces, 10 KB, unicode, a forged ``openReplaySessionToken=``
    inside, W3C baggage) as real requests to an example app (Flask in gunicorn; FastAPI in uvicorn, slow):
    every request answered, no exception, and every exported error record is ``<valid prefix>message`` with
    values the client sent. Values an HTTP client refuses to send (CR, LF, leading whitespace) go through the
    same propagators and processor in process."""
    sent: dict[int, dict[str, Any]] = {}
    statuses: Counter[int] = Counter()
    in_process: list[str | None] = []
    unanswered: list[str] = []
    numbers = itertools.count(1)
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_BLRP_MAX_QUEUE_SIZE": "100000"}
    started = time.monotonic()
    with App(kind, env) as app, requests.Session() as client:

        @settings(
            max_examples=HEADER_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        )
        @given(values=header_sets)
        def send(values: dict[str, Any]) -> None:
            case: dict[str, Any] = dict(values)
            if "baggage" in case:
                case["baggage_header"] = f"openReplaySessionToken={case['baggage']}"
            number = next(numbers)
            headers = http_headers(case, number)
            try:
                request = requests.Request("GET", f"{app.url}/checkout", headers=_utf8(headers)).prepare()
            except (requests.exceptions.InvalidHeader, ValueError):
                in_process.append(
                    judge(in_process_body({k: v for k, v in headers.items() if k != "traceparent"}), case)
                )
                return
            try:
                answer = client.send(request, timeout=30)
            except requests.RequestException as error:
                unanswered.append(f"{type(error).__name__}: {error}"[:200])
                return
            statuses[answer.status_code] += 1
            if answer.status_code == 402:
                sent[number] = case

        send()
        requested = sum(statuses.values())
        wait_stable(lambda: app.stdout_path.stat().st_size, quiet_s=3, timeout=60)  # every batch printed
        records = app.logs()
        stderr = app.stderr_path.read_text(errors="replace")
    verdicts: Counter[str] = Counter()
    prefixes: Counter[str] = Counter()
    unexpected: list[str] = []
    matched = set()
    for record in records:
        if record["severity_number"] < SeverityNumber.ERROR.value:
            continue
        number = int(record["trace_id"], 16)
        if number not in sent or not str(record["body"]).endswith(CHECKOUT_ERROR):
            unexpected.append(str(record["body"])[:200])
            continue
        matched.add(number)
        verdicts[judge(str(record["body"]), sent[number]) or "ok"] += 1
        prefixes["token"] += "[openReplaySessionToken=" in record["body"]
        prefixes["id"] += "[openReplaySession.id=" in record["body"]
        prefixes["none"] += not str(record["body"]).startswith("[")
    verdicts.update(v or "ok" for v in in_process)
    exceptions = sum(stderr.count(sign) for sign in ("Traceback", "[ERROR]", "Error handling request"))
    report(
        f"{HEADER_EXAMPLES:,} generated header values ({kind})",
        sent=HEADER_EXAMPLES,
        acknowledged=None,
        found=len(matched) + len(in_process),
        duplicated=0,
        lost=len(sent) - len(matched),
        over_http=requested,
        refused_by_http_client_checked_in_process=len(in_process),
        http_statuses={str(code): n for code, n in sorted(statuses.items())},
        unanswered=len(unanswered),
        verdicts=dict(verdicts),
        exported_prefixes=dict(prefixes),
        app_exceptions=exceptions,
        unexpected_error_records=len(unexpected),
        seconds=round(time.monotonic() - started, 1),
    )
    assert requested + len(in_process) + len(unanswered) == HEADER_EXAMPLES
    assert not unanswered, unanswered[:5]
    assert set(statuses) <= {400, 402, 431}, statuses  # the server refusing a malformed header is an answer
    assert matched == set(sent), "a request answered 402 exported no error record"
    assert verdicts.keys() <= {"ok"}, verdicts
    assert exceptions == 0, stderr[-3000:]
    assert not unexpected, unexpected[:5]


def _utf8(headers: Mapping[str, str]) -> dict[str, bytes]:
    """Header values as UTF-8 bytes: what a client sends for non-Latin-1 text (servers read it as Latin-1)."""
    return {name: value.encode("utf-8") for name, value in headers.items()}


def test_judge_flags_what_it_should() -> None:
    """The oracle itself: broken, forged and missed prefixes are told apart from right ones."""
    sent = {"token": ("X-OpenReplay-SessionToken", f" {TOKEN} ")}
    derived = str(int(TOKEN.split(".")[0], 36))
    right = f"[openReplaySessionToken={TOKEN}] [openReplaySession.id={derived}] {CHECKOUT_ERROR}"
    assert judge(right, sent) is None
    assert judge(f"[openReplaySessionToken=evil] {CHECKOUT_ERROR}", sent) == "forged"
    assert judge(f"[openReplaySessionToken={TOKEN}] [x] {CHECKOUT_ERROR}", sent) == "broken"
    assert judge(CHECKOUT_ERROR, sent) == "missed"
    assert judge(CHECKOUT_ERROR, {"token": ("X-OpenReplay-SessionToken", "a] b")}) is None
    bag = {"baggage": "x", "baggage_header": f"openReplaySessionToken={TOKEN},openReplaySession.id=12"}
    assert judge(f"[openReplaySessionToken={TOKEN}] [openReplaySession.id=12] {CHECKOUT_ERROR}", bag) is None
