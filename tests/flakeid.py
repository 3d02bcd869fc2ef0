"""Session ids and tokens in OpenReplay's shape for tests: one place that composes them.

Composition is the stand-in ingest's (:func:`tests.stack.ingest.compose_session_id`, written after
OpenReplay's backend/pkg/flakeid and checked against ids from OpenReplay's own Go code in
tests/test_replay.py). Reading a start back out of an id is the package's job
(:func:`otel_openreplay.replay.session_start_ms`), never this module's: tests must not check the package
against a copy of its own arithmetic.
"""

from __future__ import annotations

from tests.stack.ingest import base36, compose_session_id

FAKE_SIGNATURE = "3kgTmVy6B3Y2dQp2Fm1u4R"
"""A base58 HMAC in the shape of OpenReplay's (made up: nothing here verifies it)."""


def flake_id(start_ms: int, shard: int = 0x1A2B, seq: int = 7) -> str:
    """A session id as OpenReplay makes it for a session started at ``start_ms`` (epoch ms)."""
    return str(compose_session_id(start_ms, shard, seq))


def token_for(session_id: int | str) -> str:
    """A token in OpenReplay's shape for ``session_id``: base36(id).base36(delay).base36(expiry).signature."""
    return f"{base36(int(session_id))}.0.1dj3n1ak.{FAKE_SIGNATURE}"
