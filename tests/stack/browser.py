"""A real browser for tests: Debian's Chromium driven by Selenium, and OpenReplay's real tracker from npm.

:func:`ensure_chromium` finds ``/usr/bin/chromium`` + ``/usr/bin/chromedriver`` (one Debian source package,
so their versions always match) and, as root on a machine with apt, installs them
(``apt-get install chromium chromium-driver``); where it cannot it raises :class:`BrowserUnavailable` with
the reason, and the fixtures turn that into a SKIP (never a pass). :func:`tracker_modules` runs ``npm ci``
on ``examples/frontend/package-lock.json`` (``@openreplay/tracker`` pinned) into the cache, once per lockfile.
:class:`FrontendServer` serves ``examples/frontend/`` (with that ``node_modules`` and a generated
``config.js``) from its own origin; :class:`RecordingAPI` is a small API on another origin that records
every request it receives (preflights included) and answers CORS as it is told; :class:`Browser` is one
headless Chromium.

What it must never do: let the browser reach anything but loopback (every host name resolves to nothing,
background networking is off), serve files outside ``examples/frontend`` and the tracker's cache, or
install anything without root. It is test tooling: nothing under ``otel_openreplay`` may import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stack import apt, cache
from tests.stack.loopback_http import LoopbackServer

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "examples" / "frontend"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")
TRACKER_ENTRY = "node_modules/@openreplay/tracker/dist/lib/entry.js"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root cannot use Chromium's sandbox
    "--disable-dev-shm-usage",
    # No connection of Chromium's own: on a closed network they are refused and slow everything down.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    # Loopback only: every host name resolves to nothing; the tests use 127.0.0.1 addresses.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class BrowserUnavailable(RuntimeError):
    """No browser (or no tracker) on this machine and no way to install it; the message says why."""


def _say(message: str) -> None:
    print(f"[browser] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return cache.root() / "frontend"


def _apt_install(packages: Sequence[str], why: str) -> None:
    """``apt-get install`` as root; :class:`BrowserUnavailable` (the tests then skip) where it cannot."""
    try:
        apt.install(packages, why)
    except apt.AptUnavailable as error:
        raise BrowserUnavailable(str(error)) from None


def ensure_chromium() -> tuple[Path, Path]:
    """``(chromium, chromedriver)``, installing Debian's packages as root when they are missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _apt_install(APT_PACKAGES, "Chromium or its driver is not installed")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise BrowserUnavailable(f"{CHROMIUM} or {CHROMEDRIVER} is still missing after apt-get install")
    return CHROMIUM, CHROMEDRIVER


def tracker_modules() -> Path:
    """The ``node_modules`` of ``examples/frontend`` installed by ``npm ci`` (cached per lockfile digest)."""
    lock = FRONTEND / "package-lock.json"
    digest = hashlib.sha256((FRONTEND / "package.json").read_bytes() + lock.read_bytes()).hexdigest()[:16]
    home = cache_dir() / digest
    modules = home / "node_modules"
    if (home / TRACKER_ENTRY).is_file():
        return modules
    if shutil.which("npm") is None:
        _apt_install(("npm",), "npm is not installed (it installs OpenReplay's tracker)")
    with cache.locked(cache_dir() / ".npm.lock"):
        if (home / TRACKER_ENTRY).is_file():
            return modules
        staging = Path(tempfile.mkdtemp(prefix="npm-ci-", dir=cache_dir()))
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(FRONTEND / name, staging / name)
        started = time.monotonic()
        result = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not (staging / TRACKER_ENTRY).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((result.stderr or result.stdout).splitlines()[-8:])
            raise BrowserUnavailable(f"`npm ci` in examples/frontend failed:\n{tail}")
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
        _say(f"installed @openreplay/tracker with npm ci in {time.monotonic() - started:.0f} s ({home})")
    return modules


# --- servers --------------------------------------------------------------------------------------


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".json": "application/json"}


class FrontendServer(LoopbackServer):
    """Serves ``examples/frontend`` as a shop's web server would, on its own origin.

    ``/config.js`` is generated from ``config`` (the deployment's settings: the API's URL, the ingest, the
    project key); ``/node_modules/…`` comes from :func:`tracker_modules`; ``/blank.html`` is an empty page
    for tests that configure the tracker themselves.
    """

    def __init__(self, config: Mapping[str, Any], modules: Path) -> None:
        self.config = dict(config)
        roots = {"": FRONTEND.resolve(), "node_modules": modules.resolve()}
        outer = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0].lstrip("/") or "index.html"
                if path == "config.js":
                    body = f"export default {json.dumps(outer.config, indent=2)};\n".encode()
                    self._send(200, body, _TYPES[".js"])
                    return
                if path == "blank.html":
                    self._send(200, b"<!doctype html><title>blank</title>", _TYPES[".html"])
                    return
                top, _, rest = path.partition("/")
                root, relative = (roots["node_modules"], rest) if top == "node_modules" else (roots[""], path)
                target = (root / relative).resolve()
                if not target.is_relative_to(root) or not target.is_file() or target.name.startswith("package"):
                    self._send(404, b"not found", "text/plain")
                    return
                self._send(200, target.read_bytes(), _TYPES.get(target.suffix, "application/octet-stream"))

        super().__init__(Handler, "frontend")


@dataclass(frozen=True)
class Received:
    """One request a :class:`RecordingAPI` received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased


@dataclass
class _Record:
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RecordingAPI(LoopbackServer):
    """An API on its own origin that records what reaches it, for the browser-side assertions.

    ``allow_headers`` is what its preflight answer allows (``None``: the ``Access-Control-Allow-Headers``
    line is left out, as a backend that never heard of the session header answers).
    """

    def __init__(self, name: str, *, allow_headers: str | None = "*") -> None:
        self._record = _Record()
        record = self._record

        class Handler(_QuietHandler):
            def _log(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                with record.lock:
                    record.requests.append(Received(self.command, self.path, headers))

            def do_OPTIONS(self) -> None:
                self._log()
                headers = {"Access-Control-Allow-Origin": self.headers.get("Origin") or "*", "Vary": "Origin"}
                if allow_headers is not None:
                    headers["Access-Control-Allow-Headers"] = allow_headers
                self._send(204, b"", "text/plain", headers)

            def do_GET(self) -> None:
                self._log()
                body = json.dumps({"ok": True}).encode()
                self._send(200, body, "application/json", {"Access-Control-Allow-Origin": "*"})

        super().__init__(Handler, name)

    def received(self, method: str | None = None) -> list[Received]:
        with self._record.lock:
            return [r for r in self._record.requests if method is None or r.method == method]


# --- the browser ----------------------------------------------------------------------------------


class Browser:
    """One headless Chromium (Selenium 4, Debian's chromedriver) with its console log readable."""

    def __init__(self) -> None:
        chromium, driver = ensure_chromium()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = Path(tempfile.mkdtemp(prefix="otelor-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(driver)), options=options)
        self.driver.set_script_timeout(30)
        self.driver.set_page_load_timeout(30)
        self._console: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.console()  # drain the previous page's messages
        self._console.clear()
        self.driver.get(url)

    def run(self, body: str, *args: Any) -> Any:
        """Run ``body`` as an async function in the page (``arguments[0…]`` are ``args``); return its value.

        Errors thrown in the page come back as ``{"error": "<message>"}``.
        """
        script = (
            "const done = arguments[arguments.length - 1];"
            f"(async (...arguments) => {{ {body} }})(...Array.from(arguments).slice(0, -1))"
            ".then(done, (e) => done({error: String(e && e.message || e)}));"
        )
        return self.driver.execute_async_script(script, *args)

    def console(self) -> list[dict[str, Any]]:
        """Every console message (and network error the browser reported) of the current page so far."""
        self._console.extend(self.driver.get_log("browser"))
        return list(self._console)

    def quit(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()
