"""The demo behind ``scripts/demo``: from a browser's session header to what OpenReplay will show.

Every part is real: Elastic's Elasticsearch (security on), the collector built from the project's
manifest running the drop-in config, the FastAPI example under ``opentelemetry-instrument`` exporting
OTLP, and ``otel-openreplay es ...`` preparing the index, making least-privilege keys and running
OpenReplay's own reads. Where the machine has (or, as root, can install) Chromium, the session starts in
a real browser: the example shop page with OpenReplay's tracker, started against the stand-in for
OpenReplay's ingest (tests/stack/ingest.py); elsewhere it says why and sends a sample token with an
HTTP client instead. It stops everything it started, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from elasticsearch import Elasticsearch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otel_openreplay.doctor import current_request, legacy_request  # noqa: E402
from tests.apps import App  # noqa: E402
from tests.stack import browser as browser_stack  # noqa: E402
from tests.stack import collector as collector_stack  # noqa: E402
from tests.stack.es import ElasticsearchNode, ensure_distribution  # noqa: E402
from tests.stack.ingest import StandInIngest  # noqa: E402

BIN = Path(sys.executable).parent
# A token in OpenReplay's shape: base36(session id).base36(delay).base36(expiry).base58(signature).
SAMPLE_TOKEN = "1bq7y3xsc6hdc.0.1dj3n1ak.3kgTmVy6B3Y2dQp2Fm1u4R"
SAMPLE_SESSION_ID = str(int(SAMPLE_TOKEN.split(".")[0], 36))


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def cli(*args: str, env: dict[str, str]) -> str:
    """Run the project's CLI as a user would, echoing the command (secrets are never on the command line)."""
    print(f"$ otel-openreplay {' '.join(args)}", flush=True)
    result = subprocess.run([str(BIN / "otel-openreplay"), *args], env=env, capture_output=True, text=True)
    if result.stderr:
        print(result.stderr, end="", file=sys.stderr)
    if result.returncode not in (0, 1):
        raise SystemExit(f"otel-openreplay {args[0]} {args[1]} failed with exit code {result.returncode}")
    return result.stdout


def main() -> int:
    with ExitStack() as stack:
        step("Elasticsearch 8.19.21 (Elastic's integ-test distribution, security on)")
        ensure_distribution()
        node = stack.enter_context(ElasticsearchNode())
        print(f"    running at {node.url}")
        admin_env = {
            **os.environ,
            "OPENREPLAY_ES_URL": node.url,
            "OPENREPLAY_ES_USER": node.user,
            "OPENREPLAY_ES_PASSWORD": node.password,
        }

        step("Prepare the index OpenReplay reads, and two least-privilege API keys")
        print(cli("es", "setup", env=admin_env), end="")
        writer = json.loads(cli("es", "api-key", "--for", "writer", "--json", env=admin_env))
        reader = json.loads(cli("es", "api-key", "--for", "openreplay", "--json", env=admin_env))
        print(f"    writer key {writer['id']} (collector), reader key {reader['id']} (OpenReplay)")

        step("The collector (minimal distribution from collector/builder-config.yaml, drop-in config)")
        binary = collector_stack.build()
        queue = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="otelor-demo-queue-")))
        collector = collector_stack.Collector(
            env={
                "OPENREPLAY_ES_URL": node.url,
                "OPENREPLAY_ES_API_KEY": writer["encoded"],
                "OPENREPLAY_QUEUE_DIR": str(queue),
            },
            binary=binary,
        )
        stack.enter_context(collector)
        print(f"    receiving OTLP/HTTP at {collector.http_logs_url}")

        step("The shop's page (examples/frontend) with OpenReplay's tracker, in a headless Chromium")
        frontend = shop_page(stack)

        step("The FastAPI example under opentelemetry-instrument, exporting logs over OTLP")
        app = App(
            "fastapi",
            {
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": collector.http_logs_url,
                **({"SHOP_FRONTEND_ORIGINS": frontend.origin} if frontend else {}),
            },
        )
        stack.enter_context(app)
        print(f"    serving at {app.url}")

        if frontend is not None:
            token, session_id = pay_in_the_browser(stack, frontend, app)
        else:
            token, session_id = SAMPLE_TOKEN, SAMPLE_SESSION_ID
            step(f"A client in OpenReplay session {SAMPLE_SESSION_ID} calls the API; the payment fails")
            headers = {"X-OpenReplay-SessionToken": SAMPLE_TOKEN}
            for path in ("/checkout", "/crash"):
                response = app.get(path, headers)
                print(f"    GET {path} -> {response.status_code}   (X-OpenReplay-SessionToken: {SAMPLE_TOKEN})")

        step("What OpenReplay reads (its own queries, run with the OpenReplay key: read on `logs` only)")
        es = stack.enter_context(Elasticsearch(node.url, api_key=reader["encoded"]))
        current = current_request(session_id)
        hits = wait_for_hits(es, current, expected=2)
        print(f'  OpenReplay >= 1.21: match_phrase "openReplaySession.id={session_id}" on `logs`:')
        for hit in hits:
            print(json.dumps(shorten(hit["_source"]), indent=2, ensure_ascii=False))
        legacy = legacy_request("logs", int((time.time() - 24 * 3600) * 1000))
        legacy_hits = es.perform_request(
            "POST", legacy["path"], params=legacy["params"], body=legacy["body"], headers=JSON
        )["hits"]["hits"]
        print(f"  OpenReplay <= 1.20: the poller's bool filter (prefix, utc_time, tags): {len(legacy_hits)} hits")

        step("The doctor: what the replay will show, per OpenReplay generation")
        reader_env = {
            **os.environ,
            "OPENREPLAY_ES_URL": node.url,
            "OPENREPLAY_ES_API_KEY": reader["encoded"],
        }
        print(cli("es", "check", "--token", token, env=reader_env), end="")

        step("Stopping what the demo started")
    print("done.")
    return 0


def shop_page(stack: ExitStack) -> browser_stack.FrontendServer | None:
    """The shop page served on its own origin, its tracker pointed at the stand-in ingest; None without a browser."""
    try:
        browser_stack.ensure_chromium()
        modules = browser_stack.tracker_modules()
    except browser_stack.BrowserUnavailable as reason:
        print(f"    no browser on this machine ({reason});")
        print("    an HTTP client sends a sample token in OpenReplay's shape instead")
        return None
    ingest = stack.enter_context(StandInIngest({"demo-project"}))
    config = {"apiUrl": "", "ingestPoint": ingest.url, "projectKey": "demo-project"}
    frontend = stack.enter_context(browser_stack.FrontendServer(config, modules))
    print(f"    page at {frontend.origin}, ingest: the stand-in for OpenReplay's at {ingest.url}")
    return frontend


def pay_in_the_browser(stack: ExitStack, frontend: browser_stack.FrontendServer, app: App) -> tuple[str, str]:
    """Load the page, let the tracker start, pay (fetch) and hit /crash from the page; (token, session id)."""
    frontend.config["apiUrl"] = app.url
    browser = stack.enter_context(browser_stack.Browser())
    browser.open(f"{frontend.origin}/index.html")
    result = browser.run(
        "const shop = await import(arguments[0]); const session = await shop.session;"
        "const crash = await fetch(arguments[1] + '/crash').then((r) => r.status, (e) => e.message);"
        "return {session, checkout: await shop.pay(), crash};",
        f"{frontend.origin}/shop.js",
        app.url,
    )
    session = result.get("session") or {}
    if not session.get("success"):
        raise SystemExit(f"the tracker did not start: {result}")
    token, session_id = session["sessionToken"], session["sessionID"]
    step(f"The tracker started OpenReplay session {session_id}; the page calls the API and the payment fails")
    print(f"    GET /checkout -> {result['checkout']}   (fetch from the page; the tracker added the header)")
    if isinstance(result["crash"], int):
        print(f"    GET /crash -> {result['crash']}")
    else:  # uvicorn answers an unhandled exception outside the CORS middleware: no CORS header on that 500
        print(f"    GET /crash -> the page cannot read the 500 ({result['crash']}: it has no CORS header)")
    print(f"    X-OpenReplay-SessionToken: {token}")
    return token, session_id


def shorten(value: object, limit: int = 400) -> object:
    """The document as stored, with very long strings (tracebacks) cut for the terminal."""
    if isinstance(value, dict):
        return {key: shorten(item, limit) for key, item in value.items()}
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… [{len(value) - limit} more characters]"
    return value


JSON = {"content-type": "application/json", "accept": "application/json"}


def wait_for_hits(es: Elasticsearch, request: dict, expected: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    hits: list[dict] = []
    while time.monotonic() < deadline:
        hits = es.perform_request(
            "POST", request["path"], params=request["params"], body=request["body"], headers=JSON
        )["hits"]["hits"]
        if len(hits) >= expected:
            return hits
        time.sleep(0.5)
    return hits


if __name__ == "__main__":
    raise SystemExit(main())
