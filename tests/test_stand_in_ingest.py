"""The stand-in for OpenReplay's ingest composes ids and tokens as OpenReplay does (tests/stack/ingest.py)."""

from __future__ import annotations

import json

import requests

from otel_openreplay.doctor import Target
from otel_openreplay.replay import session_start_ms
from tests.stack.ingest import (
    FLAKE_EPOCH_MS,
    StandInIngest,
    TokenData,
    Tokenizer,
    base36,
    base58,
    compose_session_id,
)
from tests.test_replay import GOLDEN_FLAKE_IDS


def test_base36_as_go_formats_it() -> None:
    assert [base36(n) for n in (0, 35, 36, -37)] == ["0", "z", "10", "-11"]


def test_base58_bitcoin_alphabet() -> None:
    assert base58(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    assert base58(b"\0\0\x01") == "112"


def test_composes_the_ids_openreplays_go_code_composes() -> None:
    """Ids for (start, shard, sequence) as backend/pkg/flakeid's Flaker.Compose gave them."""
    for session_id, start_ms, shard, seq in GOLDEN_FLAKE_IDS:
        assert compose_session_id(start_ms, shard, seq) == int(session_id), session_id


def test_flake_id_carries_its_start() -> None:
    now = FLAKE_EPOCH_MS + 250_000_000_000
    session_id = compose_session_id(now, shard=3, seq=7)
    assert session_start_ms(session_id) == now
    assert session_id & 0xFFFFFF == 3 << 8 | 7


def test_token_roundtrip_and_tampering() -> None:
    tokenizer = Tokenizer(b"secret")
    data = TokenData(session_id=4129466734220411137, delay=10, expiry_ms=2_000_000_000_000)
    token = tokenizer.compose(data)
    assert token.split(".")[:3] == [base36(data.session_id), "a", base36(data.expiry_ms)]
    assert tokenizer.parse(token, now_ms=1) == data
    assert tokenizer.parse(token, now_ms=data.expiry_ms) is None  # expired
    assert Tokenizer(b"other").parse(token, now_ms=1) is None
    assert tokenizer.parse(token.replace(".a.", ".b.", 1), now_ms=1) is None
    assert Target.of(token=token).session_id == str(data.session_id)  # the doctor derives the same id


def _post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    response = requests.post(url, data=json.dumps(body), headers=headers or {}, timeout=5)
    return response.status_code, dict(response.headers), response.content


def test_answers_as_openreplays_ingest() -> None:
    with StandInIngest({"key"}) as ingest:
        status, headers, body = _post(f"{ingest.url}/v1/web/start", {"projectKey": "key", "timestamp": 0})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "*"
        reply = json.loads(body)
        assert session_start_ms(int(reply["sessionID"])) == reply["startTimestamp"]
        assert ingest.tokenizer.parse(reply["token"]).session_id == int(reply["sessionID"])  # type: ignore[union-attr]
        again = json.loads(_post(f"{ingest.url}/v1/web/start", {"projectKey": "key", "token": reply["token"]})[2])
        assert again["sessionID"] == reply["sessionID"]  # a valid token resumes its session
        assert _post(f"{ingest.url}/v1/web/start", {"projectKey": "nope"})[0] == 404
        auth = {"Authorization": f"Bearer {reply['token']}"}
        assert _post(f"{ingest.url}/v1/web/i?batch=0_1", {}, auth)[0] == 200
        assert _post(f"{ingest.url}/v1/web/i?batch=0_1", {}, {"Authorization": "Bearer forged"})[0] == 401
        assert ingest.log.batches == {int(reply["sessionID"]): 1}
