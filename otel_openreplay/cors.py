"""Would the browser send the session header to the app? The CORS preflight, asked and judged as a browser does.

A page calling its API on another origin with ``X-OpenReplay-SessionToken`` makes the browser send a
preflight first (``OPTIONS`` with ``Origin``, ``Access-Control-Request-Method`` and
``Access-Control-Request-Headers`` naming the header, lower-cased as Chromium sends them); when the answer
does not allow the header, the real request never leaves the browser and the app sees nothing at all.

:func:`preflight_headers` builds the request a browser sends, :func:`evaluate` judges the answer as the Fetch
standard's CORS-preflight fetch does (status ok, the CORS check of ``Access-Control-Allow-Origin`` and
credentials, methods, then headers, case-insensitively, ``*`` only without credentials) and says which
header is refused and the line to add; :func:`send_preflight` is the thin HTTP part (stdlib ``http.client``,
no redirect followed: a browser fails a redirected preflight too). ``otel-openreplay check-cors`` prints it.

It must never send anything but the ``OPTIONS`` preflight (no real request reaches the app), never follow a
redirect, and never raise from :func:`evaluate` (every answer, however malformed, gets a verdict).
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_openreplay.exit_codes import ExitCode

TRACKER_HEADER = "X-OpenReplay-SessionToken"
"""What OpenReplay's tracker sends with ``network: {sessionTokenHeader: true}``."""
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
"""Methods a preflight need not allow (Fetch: CORS-safelisted methods)."""
_NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
"""The methods a browser upper-cases (Fetch: normalize a method); any other keeps its case (``patch``)."""
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Preflight:
    """What the browser asks: may ``origin`` send ``method`` with ``headers`` to ``url``?"""

    url: str
    origin: str
    method: str = "GET"
    headers: tuple[str, ...] = (TRACKER_HEADER,)
    credentials: bool = False  # fetch(..., {credentials: "include"}) / xhr.withCredentials

    def request_headers(self) -> dict[str, str]:
        return preflight_headers(self.origin, self.method, self.headers)


@dataclass(frozen=True)
class Answer:
    """The server's answer to the preflight: status and headers (a name given twice: values joined by ``, ``)."""

    status: int
    headers: Mapping[str, str]

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        values = [value for key, value in self.headers.items() if key.lower() == wanted]
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class Problem:
    """One reason the browser refuses, and the line that fixes it."""

    code: str  # status | allow-origin | credentials | allow-methods | allow-headers
    text: str
    fix: str


@dataclass
class Verdict:
    preflight: Preflight
    answer: Answer
    problems: list[Problem] = field(default_factory=list)
    refused_headers: list[str] = field(default_factory=list)  # as the user named them

    @property
    def allowed(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> ExitCode:
        """``check-cors``'s exit code: allowed (0) or refused (1)."""
        return ExitCode.ALLOWED if self.allowed else ExitCode.REFUSED

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "url": self.preflight.url,
            "origin": self.preflight.origin,
            "method": self.preflight.method,
            "headers": list(self.preflight.headers),
            "request": self.preflight.request_headers(),
            "status": self.answer.status,
            "answer": {name: self.answer.get(name) for name in _CORS_ANSWER_HEADERS if self.answer.get(name)},
            "refused_headers": self.refused_headers,
            "problems": [{"code": p.code, "text": p.text, "fix": p.fix} for p in self.problems],
        }


_CORS_ANSWER_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Max-Age",
    "Vary",
)


def is_header_name(name: str) -> bool:
    """An HTTP field name (RFC 9110 token): what a browser accepts in ``setRequestHeader``/``Headers``."""
    return bool(name) and all(char in _TOKEN_CHARS for char in name)


def validate_origin(origin: str) -> str:
    """``scheme://host[:port]`` exactly as a browser serializes it; ValueError naming the problem otherwise."""
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"origin {origin!r} is not scheme://host[:port] (e.g. https://shop.example.com)")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or "@" in parsed.netloc:
        raise ValueError(f"origin {origin!r} has more than scheme://host[:port]: a browser sends only that")
    return f"{parsed.scheme}://{parsed.netloc.lower()}"


def preflight_headers(origin: str, method: str, headers: Iterable[str]) -> dict[str, str]:
    """The preflight's request headers as Chromium sends them (the names lower-cased, sorted, no spaces)."""
    names = sorted({name.lower() for name in headers})
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if names:
        request["Access-Control-Request-Headers"] = ",".join(names)
    return request


def _list(value: str | None) -> list[str] | None:
    """A comma-separated header list (None when absent), items stripped, empty items dropped."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def evaluate(preflight: Preflight, answer: Answer) -> Verdict:
    """Judge ``answer`` as the Fetch standard's CORS-preflight fetch does; never raises."""
    verdict = Verdict(preflight, answer)
    if not 200 <= answer.status <= 299:
        verdict.problems.append(
            Problem(
                "status",
                f"the preflight (OPTIONS) got HTTP {answer.status}: a browser needs a 2xx answer"
                + (" (it never follows a redirect here)" if 300 <= answer.status <= 399 else ""),
                "answer OPTIONS on this URL with 200 or 204 (a CORS library does, once installed before the "
                "routes and before any authentication)",
            )
        )
        verdict.refused_headers = list(preflight.headers)
        return verdict
    origin_problem = _check_origin(preflight, answer)
    if origin_problem is not None:
        verdict.problems.append(origin_problem)
    method_problem = _check_method(preflight, answer)
    if method_problem is not None:
        verdict.problems.append(method_problem)
    refused, headers_problem = _check_headers(preflight, answer)
    if headers_problem is not None:
        verdict.problems.append(headers_problem)
    verdict.refused_headers = list(preflight.headers) if origin_problem or method_problem else refused
    return verdict


def _check_origin(preflight: Preflight, answer: Answer) -> Problem | None:
    allow_origin = answer.get("Access-Control-Allow-Origin")
    fix_origin = f"Access-Control-Allow-Origin: {preflight.origin}"
    if allow_origin is None:
        return Problem("allow-origin", "the answer has no Access-Control-Allow-Origin", fix_origin)
    if allow_origin == "*" and not preflight.credentials:
        return None
    if allow_origin == "*":
        return Problem(
            "credentials",
            "Access-Control-Allow-Origin is `*`, which a browser refuses for a request with credentials",
            f"{fix_origin} (the page's origin, not `*`), and Access-Control-Allow-Credentials: true",
        )
    if allow_origin != preflight.origin:
        shown = allow_origin if "," not in allow_origin else f"{allow_origin} (a list: a browser takes only one)"
        return Problem(
            "allow-origin",
            f"Access-Control-Allow-Origin is {shown}, not the page's origin {preflight.origin}",
            f"{fix_origin} (add the page's origin to the allowed origins)",
        )
    if preflight.credentials and answer.get("Access-Control-Allow-Credentials") != "true":
        return Problem(
            "credentials",
            "the request has credentials and the answer has no `Access-Control-Allow-Credentials: true`",
            "Access-Control-Allow-Credentials: true",
        )
    return None


def _check_method(preflight: Preflight, answer: Answer) -> Problem | None:
    methods = _list(answer.get("Access-Control-Allow-Methods"))
    method = preflight.method
    if methods is None:
        methods = [method]  # Fetch: no list means the preflight's own method
    if method in methods or method in SAFELISTED_METHODS:
        return None
    if "*" in methods and not preflight.credentials:
        return None
    listed = ", ".join(methods) or "nothing"
    return Problem(
        "allow-methods",
        f"Access-Control-Allow-Methods allows {listed}, not {method}",
        f"Access-Control-Allow-Methods: {', '.join([*methods, method])}",
    )


def _check_headers(preflight: Preflight, answer: Answer) -> tuple[list[str], Problem | None]:
    allowed = _list(answer.get("Access-Control-Allow-Headers")) or []
    allowed_lower = {name.lower() for name in allowed}
    wildcard = "*" in allowed and not preflight.credentials
    refused = [
        name
        for name in preflight.headers
        if name.lower() not in allowed_lower and (not wildcard or name.lower() == "authorization")
    ]
    if not refused:
        return [], None
    if "*" in allowed and preflight.credentials:
        why = "`*` in Access-Control-Allow-Headers does not count for a request with credentials"
    elif allowed:
        why = f"Access-Control-Allow-Headers allows only {', '.join(allowed)}"
    else:
        why = "the answer has no Access-Control-Allow-Headers"
    names = ", ".join(refused)
    return refused, Problem(
        "allow-headers",
        f"{names} {'is' if len(refused) == 1 else 'are'} refused: {why}",
        f"Access-Control-Allow-Headers: {', '.join([*(a for a in allowed if a != '*'), *refused])}",
    )


# --- the HTTP part --------------------------------------------------------------------------------


def send_preflight(preflight: Preflight, *, timeout: float = 10.0, context: ssl.SSLContext | None = None) -> Answer:
    """Send the preflight (OPTIONS, no body, no redirect followed); OSError/HTTPException when unreachable."""
    parsed = urllib.parse.urlsplit(preflight.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"URL {preflight.url!r} is not an http(s) URL of the API")
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    connection: http.client.HTTPConnection
    if parsed.scheme == "https":
        connection = http.client.HTTPSConnection(
            parsed.hostname, parsed.port, timeout=timeout, context=context or ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request("OPTIONS", path, headers={**preflight.request_headers(), "Accept": "*/*"})
        response = connection.getresponse()
        response.read()
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return Answer(response.status, headers)
    finally:
        connection.close()


# --- text -----------------------------------------------------------------------------------------

RECIPES = (
    ("flask-cors", 'CORS(app, origins=[...], allow_headers=["Content-Type", "{header}"])'),
    ("Starlette/FastAPI", 'app.add_middleware(CORSMiddleware, allow_origins=[...], allow_headers=["{header}"])'),
    ("django-cors-headers", 'CORS_ALLOW_HEADERS = (*default_headers, "{lower}")'),
)


def render_text(verdict: Verdict) -> str:
    """What ``check-cors`` prints: the preflight, the answer's CORS headers, and the verdict."""
    preflight, answer = verdict.preflight, verdict.answer
    lines = [f"Preflight: OPTIONS {preflight.url}"]
    lines += [f"  {name}: {value}" for name, value in preflight.request_headers().items()]
    lines.append(f"Answer: HTTP {answer.status}")
    shown = [(name, answer.get(name)) for name in _CORS_ANSWER_HEADERS]
    lines += [f"  {name}: {value}" for name, value in shown if value is not None] or ["  (no CORS header)"]
    headers = ", ".join(preflight.headers)
    if verdict.allowed:
        lines.append(f"allowed: the browser sends {headers} from {preflight.origin} to this URL.")
        return "\n".join(lines)
    refused = ", ".join(verdict.refused_headers) or headers
    verb = "reaches" if len(verdict.refused_headers) == 1 else "reach"
    lines.append(f"refused: the browser blocks the request: {refused} never {verb} the app (a CORS error).")
    for problem in verdict.problems:
        lines.append(f"  - {problem.text}")
        lines.append(f"    add: {problem.fix}")
    if any(p.code == "allow-headers" for p in verdict.problems):
        first = verdict.refused_headers[0]
        lines.append("  as each framework's CORS library spells it:")
        for library, recipe in RECIPES:
            lines.append(f"    {library}: {recipe.format(header=first, lower=first.lower())}")
    return "\n".join(lines)


def check(
    url: str,
    origin: str,
    *,
    method: str = "GET",
    headers: Sequence[str] = (TRACKER_HEADER,),
    credentials: bool = False,
    timeout: float = 10.0,
) -> Verdict:
    """Validate the inputs, send the preflight and judge the answer (ValueError for bad input)."""
    bad = [name for name in headers if not is_header_name(name)]
    if bad:
        raise ValueError(f"not a header name a browser sends: {', '.join(map(repr, bad))}")
    if not is_header_name(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    normalized = method.upper() if method.upper() in _NORMALIZED_METHODS else method
    preflight = Preflight(url, validate_origin(origin), normalized, tuple(headers), credentials)
    return evaluate(preflight, send_preflight(preflight, timeout=timeout))
