"""Pytest plugin with a real Elasticsearch node for the test session.

Load it with ``pytest_plugins = ["tests.stack.fixtures"]`` in ``tests/conftest.py``.

``es_node`` starts one node the first time a test asks for it (downloading and building on a cold cache) and
removes it when the session ends; ``es_client`` is a superuser client per test. Tests that stop, kill or
reconfigure a node must start their own :class:`~tests.stack.es.ElasticsearchNode` instead of touching
``es_node``, which other tests share. Each pytest-xdist worker gets its own node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from tests.stack.es import ElasticsearchNode, client


@pytest.fixture(scope="session")
def es_node() -> Iterator[ElasticsearchNode]:
    """One running node (security on, ``elastic`` + random password) shared by the whole session."""
    with ElasticsearchNode() as node:
        yield node


@pytest.fixture
def es_client(es_node: ElasticsearchNode) -> Iterator[Elasticsearch]:
    """An ``Elasticsearch`` client logged in as ``elastic`` on ``es_node``, closed after the test."""
    superuser = client(es_node)
    yield superuser
    superuser.close()
