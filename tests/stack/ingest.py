"""A STAND-IN for OpenReplay's ingest (``backend/cmd/http``): just enough for the real tracker to start.

OpenReplay's own ingest needs Redis, Postgres with OpenReplay's schema, a GeoIP database and a uap-core
file, and its source is on no package registry, so the project's CI cannot build it. This stand-in answers
the tracker's three calls as OpenReplay's ingest answers them, so that everything downstream of the
browser sees real-shaped values:

- ``POST /v1/web/start``: 404 for an unknown project key (as OpenReplay: "project doesn't exist or is not
  active"); else a session id composed like OpenReplay's flaker (``(ms - 1550000000000) << 24 | shard << 8
  | seq``) and a token composed like ``backend/pkg/token/tokenizer.go`` (base36 id, delay and expiry, then
  the base58 HMAC-SHA256 of those three), with ``startTimestamp`` derived from the id, and the rest of
  ``StartSessionResponse``.
- ``GET /v1/web/tags``: ``{"tags": []}``.
- ``POST /v1/web/i``: 200 when ``Authorization: Bearer <token>`` verifies, else 401 (the tracker then
  starts a new session). The batch is counted, never decoded.
- CORS as OpenReplay's ingest answers: ``Access-Control-Allow-Origin: *`` on every answer, a 200 with
  ``Cache-Control: max-age=86400`` for every ``OPTIONS``.

It is what lets the tracker start in tests, not what is tested. It listens on 127.0.0.1 only, in a thread
of the test process; it must never be used outside tests (nothing under ``otel_openreplay`` imports it).
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from otel_openreplay.replay import session_start_ms
from tests.stack.loopback_http import LoopbackServer

FLAKE_EPOCH_MS = 1_550_000_000_000
"""OpenReplay's flake id epoch (backend/pkg/flakeid). The stand-in composes ids itself (checked against ids
from OpenReplay's Go code in tests/test_replay.py); it reads a start back with the package's
``otel_openreplay.replay.session_start_ms`` (as ``flakeid.ExtractTimestamp``), not a copy of it."""
MAX_SESSION_DURATION_MS = 7_200_000
"""A project's default ``max_session_duration`` (2 h): the token's expiry is start + this."""
COMPRESSION_THRESHOLD = 20_000
BEACON_SIZE_LIMIT = 1_000_000
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST,GET,PATCH,DELETE",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,Content-Encoding,DataType",
}
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base36(number: int) -> str:
    """Go's ``strconv.FormatInt(n, 36)``: lower case, ``-`` for negatives."""
    if number < 0:
        return "-" + base36(-number)
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _BASE36[digit] + out
        if number == 0:
            return out


def base58(data: bytes) -> str:
    """Bitcoin base58 (the ``btcutil/base58`` encoding OpenReplay's tokenizer uses)."""
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _BASE58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def compose_session_id(now_ms: int, shard: int, seq: int) -> int:
    """OpenReplay's flake id: milliseconds since its epoch, then an 16-bit shard and an 8-bit sequence."""
    return (now_ms - FLAKE_EPOCH_MS) << 24 | (shard & 0xFFFF) << 8 | (seq & 0xFF)


@dataclass(frozen=True)
class TokenData:
    session_id: int
    delay: int
    expiry_ms: int


class Tokenizer:
    """``backend/pkg/token/tokenizer.go``: compose and parse signed session tokens."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        return base58(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def compose(self, data: TokenData) -> str:
        payload = f"{base36(data.session_id)}.{base36(data.delay)}.{base36(data.expiry_ms)}"
        return f"{payload}.{self._sign(payload)}"

    def parse(self, token: str, now_ms: int | None = None) -> TokenData | None:
        """The token's data if its signature verifies and it has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 4:
            return None
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(self._sign(payload), parts[3]):
            return None
        try:
            data = TokenData(*(int(part, 36) for part in parts[:3]))
        except ValueError:
            return None
        if data.expiry_ms <= (now_ms if now_ms is not None else int(time.time() * 1000)):
            return None
        return data


@dataclass
class Started:
    """One session the stand-in started: what the tracker sent and what it was answered."""

    request: dict[str, Any]
    reply: dict[str, Any]
    origin: str | None


@dataclass
class IngestLog:
    started: list[Started] = field(default_factory=list)
    batches: dict[int, int] = field(default_factory=dict)  # session id -> batches accepted
    refused_batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class StandInIngest(LoopbackServer):
    """The stand-in, on 127.0.0.1 in a daemon thread: ``with StandInIngest({"key"}) as ingest: ingest.url``."""

    def __init__(self, project_keys: set[str], *, shard: int = 1, secret: bytes | None = None) -> None:
        self.project_keys = set(project_keys)
        self.tokenizer = Tokenizer(secret or secrets.token_bytes(32))
        self.log = IngestLog()
        self._shard = shard
        self._seq = 0
        super().__init__(_handler_for(self), "stand-in-ingest")

    @property
    def url(self) -> str:
        """The ``ingestPoint`` to configure the tracker with."""
        return self.origin

    def start_session(self, request: dict[str, Any], origin: str | None) -> tuple[int, dict[str, Any]]:
        """Answer a start request as OpenReplay's ``startSessionHandlerWeb`` does (status, JSON body)."""
        key = request.get("projectKey")
        if not isinstance(key, str) or not key:
            return 403, {"error": "projectKey value required"}
        if key not in self.project_keys:
            return 404, {"error": f"project doesn't exist or is not active, key: {key}"}
        now_ms = int(time.time() * 1000)
        data = self.tokenizer.parse(request["token"]) if isinstance(request.get("token"), str) else None
        if data is None:
            with self.log.lock:
                self._seq = (self._seq + 1) & 0xFF
                session_id = compose_session_id(now_ms, self._shard, self._seq)
            timestamp = request.get("timestamp")
            delay = now_ms - int(timestamp) if isinstance(timestamp, (int, float)) else 0
            data = TokenData(session_id, delay, now_ms + MAX_SESSION_DURATION_MS)
        user_uuid = request.get("userUUID") if isinstance(request.get("userUUID"), str) else None
        reply: dict[str, Any] = {
            "token": self.tokenizer.compose(data),
            "userUUID": user_uuid or str(uuid.uuid4()),
            "userOS": "Linux",
            "userDevice": "",
            "userBrowser": "Chrome",
            "userCountry": "UN",
            "userState": "",
            "userCity": "",
            "sessionID": str(data.session_id),
            "projectID": "1",
            "beaconSizeLimit": BEACON_SIZE_LIMIT,
            "compressionThreshold": COMPRESSION_THRESHOLD,
            "startTimestamp": session_start_ms(data.session_id),
            "delay": data.delay,
            "canvasEnabled": False,
            "canvasQuality": "low",
            "canvasFPS": 1,
            "features": {},
            "protocolVersion": 2,
        }
        with self.log.lock:
            self.log.started.append(Started(request, reply, origin))
        return 200, reply

    def accept_batch(self, authorization: str | None) -> int:
        scheme, _, token = (authorization or "").partition(" ")
        data = self.tokenizer.parse(token) if scheme == "Bearer" else None
        with self.log.lock:
            if data is None:
                self.log.refused_batches += 1
                return 401
            self.log.batches[data.session_id] = self.log.batches.get(data.session_id, 0) + 1
        return 200


def _handler_for(ingest: StandInIngest) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | None = None, extra: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in {**CORS_HEADERS, **(extra or {})}.items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_OPTIONS(self) -> None:
            self._answer(200, extra={"Cache-Control": "max-age=86400"})

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/v1/web/tags":
                self._answer(200, {"tags": []})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            body = self._body()
            if path == "/v1/web/start":
                try:
                    request = json.loads(body)
                except ValueError as error:
                    self._answer(400, {"error": str(error)})
                    return
                if not isinstance(request, dict):
                    self._answer(400, {"error": "expected a JSON object"})
                    return
                self._answer(*ingest.start_session(request, self.headers.get("Origin")))
            elif path == "/v1/web/i":
                status = ingest.accept_batch(self.headers.get("Authorization"))
                self._answer(status, None if status == 200 else {"error": "unauthorized"})
            elif path == "/v1/web/not-started":
                self._answer(200)
            else:
                self._answer(404, {"error": "not found"})

    return Handler
