"""End to end with Celery: a web request enqueues tasks, a real worker fails, OpenReplay finds it on the replay.

Real processes only: Redis (Debian's ``redis-server``) as the broker, the Flask example (gunicorn) whose
``POST /order`` enqueues the tasks of ``examples/celery_app.py``, a ``celery worker`` (solo, prefork,
threads and gevent pools) and ``celery beat`` (alone and in the worker, ``-B``) under
``opentelemetry-instrument`` with no otel-openreplay setting and Celery's default logging settings, the
collector with the shipped config, and Elasticsearch read as OpenReplay reads it.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from examples.celery_app import RETRY_EVERY_ENV
from otel_openreplay.celery_beat import EMBEDDED_BEAT_MESSAGE
from otel_openreplay.celery_gevent import GEVENT_PATCH_ENV, LATE_PATCH_MESSAGE
from otel_openreplay.doctor import LEGACY_TOKEN_RE, current_request, legacy_request
from tests.apps import App, Beat, Worker, free_port
from tests.stack import collector as collector_stack
from tests.stack.fixtures import Accounts
from tests.stack.redis import RedisServer
from tests.test_pipeline_e2e import assert_contract, new_token, poll, search, wait_for

pytestmark = pytest.mark.e2e

_orders = itertools.count(70_001)
_databases = itertools.count(1)  # one Redis database per worker: each worker gets only its own tasks

FAILURE_LOGGER = "celery.app.trace"
"""The logger of Celery's own "Task ... raised unexpected" record."""

POOLS: dict[str, dict[str, str]] = {
    "solo": {},
    "prefork": {},
    "threads": {},
    # Celery patches in its own main(), after opentelemetry-instrument imported Kombu: too late
    # (tested below). OpenTelemetry's setting patches first, as the README says.
    "gevent": {GEVENT_PATCH_ENV: "patch_all"},
}
"""Every pool tested end to end, with the worker environment it needs."""


@pytest.fixture(scope="module")
def collector(collector_binary: Path, accounts: Accounts) -> Iterator[collector_stack.Collector]:
    with collector_stack.Collector(collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary) as running:
        yield running


def otlp_env(collector: collector_stack.Collector, protocol: str = "grpc") -> dict[str, str]:
    """Logs over OTLP (gRPC, or ``http/protobuf``) to the collector, as the pipeline tests send them."""
    if protocol == "grpc":
        endpoint = {
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://{collector.grpc_endpoint}",
            "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "true",
        }
    else:
        endpoint = {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": collector.http_logs_url}
    return {
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        **endpoint,
        "OTEL_TRACES_EXPORTER": "none",
    }


class Shop:
    """The Flask example and a Celery worker sharing one broker database."""

    def __init__(self, web: App, worker: Worker, env: dict[str, str]) -> None:
        self.web = web
        self.worker = worker
        self.env = env
        """The exporters and the broker both use: what a ``celery beat`` for this shop needs."""

    def order(self, headers: dict[str, str]) -> str:
        """``POST /order`` with ``headers``; returns the order number the tasks log."""
        number = str(next(_orders))
        response = self.web.post("/order", headers, order=number)
        assert response.status_code == 202, response.text
        return number


@contextlib.contextmanager
def running_shop(
    redis_server: RedisServer,
    collector: collector_stack.Collector,
    pool: str,
    web_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    worker_args: Sequence[str] = (),
) -> Iterator[Shop]:
    env = {**otlp_env(collector), **broker_env(redis_server)}
    with (
        App("flask", {**env, **(web_env or {})}) as web,
        Worker(pool, {**env, **POOLS[pool], **(worker_env or {})}, worker_args) as worker,
    ):
        yield Shop(web, worker, env)


def broker_env(redis_server: RedisServer) -> dict[str, str]:
    """A Redis database of its own: each worker gets only its own tasks (and beat sends only there)."""
    return {"CELERY_BROKER_URL": f"{redis_server.url.rsplit('/', 1)[0]}/{next(_databases)}"}


@pytest.fixture(scope="module", params=list(POOLS))
def shop(
    request: pytest.FixtureRequest, redis_server: RedisServer, collector: collector_stack.Collector
) -> Iterator[Shop]:
    with running_shop(redis_server, collector, request.param) as running:
        yield running


def by_logger(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["log"]["logger"]: doc for doc in docs}


class TestWorkerRecordsReachTheReplay:
    def test_task_error_and_failure_reach_both_openreplay_reads(self, shop: Shop, reader: Elasticsearch) -> None:
        """The task's ERROR and Celery's failure record carry the request's session; both reads find them."""
        token, session_id = new_token()
        order = shop.order({"X-OpenReplay-SessionToken": token})
        docs = by_logger(wait_for(reader, session_id, 2))
        assert sorted(docs) == [FAILURE_LOGGER, "shop.receipts"]
        for doc in docs.values():
            assert_contract(doc, service="shop-worker", token=token, session_id=session_id)
        assert docs["shop.receipts"]["message"].endswith(f"] receipt mail for order {order} bounced")
        failure = docs[FAILURE_LOGGER]["message"]
        assert "] Task shop.charge_card[" in failure
        assert f"raised unexpected: RuntimeError('card processor rejected order {order}')" in failure
        assert "Traceback (most recent call last):" in failure
        assert docs[FAILURE_LOGGER]["error"]["type"] == "RuntimeError"
        legacy = search(reader, legacy_request("logs", int((time.time() - 3600) * 1000)))
        mine = [doc for doc in legacy if doc.get("openReplaySessionToken") == token]
        assert sorted(doc["log"]["logger"] for doc in mine) == [FAILURE_LOGGER, "shop.receipts"]
        for doc in mine:
            match = LEGACY_TOKEN_RE.search(doc["message"])
            assert match is not None
            assert match.group(1) == token

    def test_celery_console_output_is_kept(self, shop: Shop, reader: Elasticsearch) -> None:
        """Celery's own console handler still prints the task's error and the failure, as without OTel."""
        _, session_id = new_token()
        order = shop.order({"openReplaySession.id": session_id})
        wait_for(reader, session_id, 2)
        shop.worker.wait_for_console(f"receipt mail for order {order} bounced")
        shop.worker.wait_for_console(f"RuntimeError: card processor rejected order {order}")
        if shop.worker.pool == "prefork":  # the records above were logged in pool children
            assert "ERROR/ForkPoolWorker-" in shop.worker.console()
        assert GEVENT_PATCH_ENV not in shop.worker.console()  # the late-patch check finds nothing to say

    def test_each_record_arrives_once_with_its_own_session(self, shop: Shop, reader: Elasticsearch) -> None:
        """No handler was added twice: two orders, exactly two documents each. The receipt task waits on the
        mail server, so in the threads and gevent pools the two sessions' tasks run at once: each record
        still carries its own order's session."""
        orders = {}
        for session_id in [new_token()[1] for _ in range(2)]:
            orders[session_id] = shop.order({"openReplaySession.id": session_id})
        for session_id, order in orders.items():
            docs = wait_for(reader, session_id, 2)
            assert sorted(doc["log"]["logger"] for doc in docs) == [FAILURE_LOGGER, "shop.receipts"]
            for doc in docs:
                assert f"order {order}" in doc["message"]


def test_propagate_false_leaves_tasks_untagged(
    redis_server: RedisServer, collector: collector_stack.Collector, reader: Elasticsearch
) -> None:
    """OTEL_OPENREPLAY_PROPAGATE=false on the web app: the session stays there, the worker's records are untagged."""
    token, session_id = new_token()
    with running_shop(redis_server, collector, "solo", {"OTEL_OPENREPLAY_PROPAGATE": "false"}) as shop:
        order = shop.order({"X-OpenReplay-SessionToken": token})
        deadline = time.monotonic() + 30
        docs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(docs) < 2:
            answer = reader.search(index="logs", query={"match_phrase": {"message": f"order {order}"}}, size=10)
            docs = [hit["_source"] for hit in answer["hits"]["hits"]]
            time.sleep(0.3)
        assert sorted(doc["log"]["logger"] for doc in docs) == [FAILURE_LOGGER, "shop.receipts"]
        for doc in docs:
            assert_contract(doc, service="shop-worker", token=None, session_id=None)
        assert search(reader, current_request(session_id)) == []


def test_a_pool_child_that_exits_loses_nothing(
    redis_server: RedisServer, collector: collector_stack.Collector, reader: Elasticsearch
) -> None:
    """``--max-tasks-per-child 1``: each child exits right after its task, before its batch is due; the
    records still arrive (a child ends with ``os._exit``, which skips the SDK's own flush at exit)."""
    slow_batches = {"OTEL_BLRP_SCHEDULE_DELAY": "30000"}  # nothing is exported on schedule during the test
    args = ["--max-tasks-per-child", "1"]
    with running_shop(redis_server, collector, "prefork", worker_env=slow_batches, worker_args=args) as shop:
        _, session_id = new_token()
        shop.order({"openReplaySession.id": session_id})
        docs = wait_for(reader, session_id, 2)
        assert sorted(doc["log"]["logger"] for doc in docs) == [FAILURE_LOGGER, "shop.receipts"]


def test_gevent_patched_too_late_says_which_setting_fixes_it(
    redis_server: RedisServer, collector: collector_stack.Collector
) -> None:
    """``--pool gevent`` without OpenTelemetry's gevent setting: Celery patches after Kombu was imported and
    the worker would run no task; its console gets an ERROR naming the setting."""
    worker = Worker("gevent", {**otlp_env(collector), **broker_env(redis_server)})
    worker.READY = LATE_PATCH_MESSAGE  # such a worker may block before it says "ready."
    with worker:
        assert f"ERROR/MainProcess] {LATE_PATCH_MESSAGE}" in worker.console()


def by_message(reader: Elasticsearch, start: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The documents whose message starts with ``start``, polled until ``count`` are there."""

    def probe() -> list[dict[str, Any]]:
        answer = reader.search(index="logs", query={"match_phrase": {"message": start}}, size=50)
        return [hit["_source"] for hit in answer["hits"]["hits"] if hit["_source"]["message"].startswith(start)]

    return poll(probe, count, timeout)


RETRY_LOGGER = "shop.payments"


@pytest.mark.parametrize("beat", ["beat", "worker -B"])
def test_beat_sent_retry_lands_on_the_ordering_session(
    beat: str,
    redis_server: RedisServer,
    collector: collector_stack.Collector,
    reader: Elasticsearch,
    tmp_path: Path,
) -> None:
    """Beat sends ``shop.retry_declined_payments``; the worker retries the declined order inside the session
    that placed it (``otel_openreplay.session``), so the retry's ERROR is on that session's replay too."""
    every = {RETRY_EVERY_ENV: "1"}
    embedded = beat == "worker -B"
    worker_args = ["-B", "--schedule", str(tmp_path / "celerybeat-schedule")] if embedded else []
    with (
        running_shop(redis_server, collector, "solo", worker_env=every, worker_args=worker_args) as shop,
        contextlib.nullcontext() if embedded else Beat({**shop.env, **every}) as scheduler,
    ):
        token, session_id = new_token()
        order = shop.order({"X-OpenReplay-SessionToken": token})
        docs = by_logger(wait_for(reader, session_id, 3))
        assert sorted(docs) == [FAILURE_LOGGER, RETRY_LOGGER, "shop.receipts"]
        for doc in docs.values():
            assert_contract(doc, service="shop-worker", token=token, session_id=session_id)
        assert docs[RETRY_LOGGER]["message"].endswith(f"] retried payment for order {order} declined again")
        (shop.worker if scheduler is None else scheduler).wait_for_console(
            "Scheduler: Sending due task retry-declined-payments"
        )


def beat_process(kind: str, env: dict[str, str], schedule_dir: Path) -> Worker:
    """``celery beat`` alone (service ``shop-beat``), or a solo ``celery worker -B`` (``shop-worker``), started
    once beat says it starts (a worker without its broker never gets ready)."""
    if kind == "beat":
        return Beat(env)
    worker = Worker("solo", env, ["-B", "--schedule", str(schedule_dir / "celerybeat-schedule")])
    worker.READY = Beat.READY
    return worker


@pytest.mark.parametrize(
    ("kind", "protocol"), [("beat", "grpc"), ("worker -B", "http/protobuf")], ids=["beat", "worker -B"]
)
def test_beat_errors_reach_elasticsearch(
    kind: str, protocol: str, collector: collector_stack.Collector, reader: Elasticsearch, tmp_path: Path
) -> None:
    """Beat's own ERROR records (here: its broker is down) leave beat and reach Elasticsearch, though Celery
    emptied the root logger's handlers, also from the beat process ``worker -B`` forks (over OTLP/HTTP:
    see the next test); Celery's console still prints them."""
    port = free_port()  # nothing listens there
    env = {**otlp_env(collector, protocol), "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0", RETRY_EVERY_ENV: "1"}
    error = f"beat: Connection error: Error 111 connecting to 127.0.0.1:{port}"
    with beat_process(kind, env, tmp_path) as process:
        process.wait_for_console(f"ERROR/{'MainProcess' if kind == 'beat' else 'Beat'}] {error}")
        docs = by_message(reader, error, 1)
    assert docs, "beat's connection error never reached Elasticsearch"
    doc = docs[0]
    assert doc["level"] == "error"
    assert doc["tags"] == ["error"]
    assert doc["service"] == {"name": "shop-beat" if kind == "beat" else "shop-worker"}
    assert doc["log"] == {"logger": "celery.beat", "level": "ERROR"}
    assert "openReplaySession" not in doc  # no session sent it


def test_embedded_beat_over_grpc_says_what_to_do(collector: collector_stack.Collector, tmp_path: Path) -> None:
    """``worker -B`` over OTLP/gRPC: Celery closes the descriptors its beat process inherited, gRPC's too, so
    that process can export nothing; its console says so and names both ways out."""
    env = {**otlp_env(collector), "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with beat_process("worker -B", env, tmp_path) as worker:
        worker.wait_for_console(f"ERROR/Beat] {EMBEDDED_BEAT_MESSAGE} (found: OTLPLogExporter)")
