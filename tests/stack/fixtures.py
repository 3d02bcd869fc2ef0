"""Pytest plugin with a real Elasticsearch node (and, for the Celery tests, a real Redis) for the test session.

Load it with ``pytest_plugins = ["tests.stack.fixtures"]`` in ``tests/conftest.py``.

``es_node`` starts one node the first time a test asks for it (downloading and building on a cold cache) and
removes it when the session ends; ``es_client`` is a superuser client per test. ``es_server`` is a node of
each supported server version in turn (tests using it run once per version; ``es_node`` serves 8.19.21, and
pytest stops one older node before it starts the next). Tests that stop, kill or
reconfigure a node must start their own :class:`~tests.stack.es.ElasticsearchNode` instead of touching
``es_node``, which other tests share. Each pytest-xdist worker gets its own node.

``tracker_modules`` (OpenReplay's tracker, ``npm ci``-installed once per lockfile) and ``browser`` (one headless
Chromium per test module) SKIP, with the reason, on a machine where Chromium cannot be installed.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from otel_openreplay.keys import role_descriptors
from otel_openreplay.template import setup_index
from tests.stack import browser as browser_stack
from tests.stack import collector as collector_stack
from tests.stack import es
from tests.stack.es import ElasticsearchNode, client
from tests.stack.process import new_password
from tests.stack.redis import RedisServer

INDEX = "logs"
(WRITER_ROLE,) = role_descriptors("writer", INDEX).values()
"""The writer key's role as `otel-openreplay es api-key --for writer` makes it: all the exporters get."""
(READER_ROLE,) = role_descriptors("openreplay", INDEX).values()
"""The OpenReplay key's role as the CLI makes it: read on ``logs``, nothing else."""


@pytest.fixture(scope="session")
def es_node() -> Iterator[ElasticsearchNode]:
    """One running node (security on, ``elastic`` + random password) shared by the whole session."""
    with ElasticsearchNode() as node:
        yield node


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One running ``redis-server`` (Debian's, installed by apt-get when missing) on a free loopback port."""
    with RedisServer() as server:
        yield server


SERVER_VERSIONS = tuple(es.DISTRIBUTIONS)
"""Every Elasticsearch version the package supports and tests: 8.19.21, the oldest 8.x, and 7.17."""


@pytest.fixture(scope="session", params=SERVER_VERSIONS)
def es_server(request: pytest.FixtureRequest) -> Iterator[ElasticsearchNode]:
    """A running node of each supported version in turn (8.19.21 is ``es_node``)."""
    if request.param == es.ES_VERSION:
        yield request.getfixturevalue("es_node")
        return
    with ElasticsearchNode(version=request.param) as node:
        yield node


@pytest.fixture
def es_client(es_node: ElasticsearchNode) -> Iterator[Elasticsearch]:
    """An ``Elasticsearch`` client logged in as ``elastic`` on ``es_node``, closed after the test."""
    superuser = client(es_node)
    yield superuser
    superuser.close()


class Accounts:
    """The least-privilege users of one node: ``writer`` for the collector, ``reader`` as OpenReplay."""

    def __init__(self, node: Any) -> None:
        suffix = secrets.token_hex(3)
        self.node = node
        self.writer = (f"otelor-collector-{suffix}", new_password())
        self.reader = (f"otelor-openreplay-{suffix}", new_password())
        # Native users where the node can have them, else the file realm (7.x, 8.0.0 here): same roles.
        es.add_user(node, *self.writer, f"otelor_collector_writer_{suffix}", WRITER_ROLE)
        es.add_user(node, *self.reader, f"otelor_logs_reader_{suffix}", READER_ROLE)
        with contextlib.closing(es.client(node)) as admin:
            setup_index(admin, INDEX)  # as users do before pointing OpenReplay at it

    def basic_env(self) -> dict[str, str]:
        user, password = self.writer
        return {"OPENREPLAY_ES_URL": self.node.url, "OPENREPLAY_ES_USER": user, "OPENREPLAY_ES_PASSWORD": password}

    def reader_client(self) -> Elasticsearch:
        return es.client(self.node, basic_auth=self.reader)


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    """The otelcol-openreplay binary, built (or found in the cache) once per session."""
    return collector_stack.build()


@pytest.fixture(scope="module")
def accounts(es_node: ElasticsearchNode) -> Accounts:
    """A writer and an OpenReplay reader on ``es_node``, and the index set up as users set it up."""
    return Accounts(es_node)


@pytest.fixture
def reader(accounts: Accounts) -> Iterator[Elasticsearch]:
    """A client as OpenReplay reads: ``accounts``' reader, with ``read`` on ``logs`` and nothing else."""
    with contextlib.closing(accounts.reader_client()) as made:
        yield made


@pytest.fixture(scope="session")
def tracker_modules() -> Path:
    """``node_modules`` holding ``@openreplay/tracker`` as ``examples/frontend/package-lock.json`` pins it."""
    try:
        return browser_stack.tracker_modules()
    except browser_stack.BrowserUnavailable as reason:
        pytest.skip(f"no OpenReplay tracker: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[browser_stack.Browser]:
    """One headless Chromium shared by a test module (each test opens its own page)."""
    try:
        browser_stack.ensure_chromium()
    except browser_stack.BrowserUnavailable as reason:
        pytest.skip(f"no browser: {reason}")
    with browser_stack.Browser() as running:
        yield running
