"""End to end with Celery: a web request enqueues tasks, a real worker fails, OpenReplay finds it on the replay.

Real processes only: Redis (Debian's ``redis-server``) as the broker, the Flask example (gunicorn) whose
``POST /order`` enqueues the tasks of ``examples/celery_app.py``, a ``celery worker`` (solo and prefork
pools) under ``opentelemetry-instrument`` with no otel-openreplay setting and Celery's default logging
settings, the collector with the shipped config, and Elasticsearch read as OpenReplay reads it.
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

from otel_openreplay.doctor import LEGACY_TOKEN_RE, current_request, legacy_request
from tests.apps import App, Worker
from tests.stack import collector as collector_stack
from tests.stack.fixtures import Accounts
from tests.stack.redis import RedisServer
from tests.test_pipeline_e2e import assert_contract, new_token, search, wait_for

pytestmark = pytest.mark.e2e

_orders = itertools.count(70_001)
_databases = itertools.count(1)  # one Redis database per worker: each worker gets only its own tasks

FAILURE_LOGGER = "celery.app.trace"
"""The logger of Celery's own "Task ... raised unexpected" record."""


@pytest.fixture(scope="module")
def collector(collector_binary: Path, accounts: Accounts) -> Iterator[collector_stack.Collector]:
    with collector_stack.Collector(collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary) as running:
        yield running


def otlp_env(collector: collector_stack.Collector) -> dict[str, str]:
    """Logs over OTLP/gRPC to the collector, as the pipeline tests send them."""
    return {
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://{collector.grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "true",
        "OTEL_TRACES_EXPORTER": "none",
    }


class Shop:
    """The Flask example and a Celery worker sharing one broker database."""

    def __init__(self, web: App, worker: Worker) -> None:
        self.web = web
        self.worker = worker

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
    broker = {"CELERY_BROKER_URL": f"{redis_server.url.rsplit('/', 1)[0]}/{next(_databases)}"}
    env = {**otlp_env(collector), **broker}
    with (
        App("flask", {**env, **(web_env or {})}) as web,
        Worker(pool, {**env, **(worker_env or {})}, worker_args) as worker,
    ):
        yield Shop(web, worker)


@pytest.fixture(scope="module", params=["solo", "prefork"])
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

    def test_each_record_arrives_once(self, shop: Shop, reader: Elasticsearch) -> None:
        """No handler was added twice: two orders, exactly two documents each."""
        sessions = [new_token()[1] for _ in range(2)]
        for session_id in sessions:
            shop.order({"openReplaySession.id": session_id})
        for session_id in sessions:
            docs = wait_for(reader, session_id, 2)
            assert sorted(doc["log"]["logger"] for doc in docs) == [FAILURE_LOGGER, "shop.receipts"]


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
