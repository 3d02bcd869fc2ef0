"""A real Elasticsearch for the project's tests, demo and benchmarks.

Fetches Elastic's integ-test distribution of Elasticsearch (Maven Central) into a per-user cache, adds
the test-only analysis plugin built from ``tests/stack/es_plugin`` (without it that distribution cannot
create its security index, so native users, roles and API keys fail), and runs single nodes or a small
cluster on 127.0.0.1 with security on, TLS off and a ``bootstrap.password`` for ``elastic`` generated per
node.

What it must never do: listen on anything but loopback; run Elasticsearch as root (as root it creates the
system user ``otelor-es`` and runs the server as that user); change the owner or mode of anything but a
node's own directories and the cache it fills; write a password anywhere but a node's keystore (and the
``es up`` state file, mode 0600, written by ``tests/stack/__main__.py``); signal processes it did not
start. It is test tooling: nothing under ``otel_openreplay`` may import it.

Typical use::

    with ElasticsearchNode() as node:  # downloads/builds on first use, then starts and waits
        create_role(node, "logs_reader", {"indices": [{"names": ["logs"], "privileges": ["read"]}]})
        es = client(node)  # an ``elasticsearch.Elasticsearch`` logged in as ``elastic``
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from base64 import b64encode
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from elasticsearch import Elasticsearch

ES_VERSION = "8.19.21"
"""The Elasticsearch managed here: the newest ``integ-test-zip`` on Maven Central (which has no 9.x)."""

CACHE_ENV = "OTEL_OPENREPLAY_CACHE"
"""Environment variable naming the cache root; the default is ``~/.cache/otel-openreplay``."""

ES_USER = "otelor-es"
"""System user that runs Elasticsearch when this code runs as root (Elasticsearch refuses root)."""

SUPERUSER = "elastic"
"""The built-in superuser whose password each node's keystore bootstraps."""

PLUGIN_NAME = "otel-openreplay-security-analysis"
"""Name of the stable analysis plugin (must match ``name`` in its descriptor)."""

PLUGIN_SOURCES = Path(__file__).with_name("es_plugin")
"""Java sources and descriptor of the plugin; a change to any file there reinstalls it."""

_DIST_URL = (
    "https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/"
    f"{ES_VERSION}/elasticsearch-{ES_VERSION}.zip"
)
# Published next to the zip on Maven Central; pinned here so a corrupted or swapped download is refused.
_DIST_SHA512 = (
    "cf6b0a93860d329937ae7f913ec5073b0c726c77639764b93fc83a304aa1dd9d"
    "4defcfa2849948eea3b0b47c2065f994908603939fc2a4774c9c4d868c5ec1dd"
)
_DIST_SIZE_MB = 107
_PLUGIN_MARKER = ".otelor-plugin-sha256"  # in the distribution's home: digest of the plugin's sources
_PLUGIN_API_JARS = (
    "elasticsearch-plugin-api-*.jar",
    "elasticsearch-plugin-analysis-api-*.jar",
    "lucene-core-*.jar",
    "lucene-analysis-common-*.jar",
)
# Majors picked without ES_JAVA_HOME. 8.19.21 also ran on Temurin 25 here, but 17 is the verified default.
_SUPPORTED_JAVA = range(17, 25)
# Variables a caller's shell may hold that would change how the node starts; each node sets its own.
_SCRUBBED_ENV = frozenset(
    {"JAVA_HOME", "ES_JAVA_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "ES_PATH_CONF", "ES_TMPDIR"}
)
_LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """Something in the test stack could not be prepared or run; the message says what and usually why."""


class ElasticsearchStartError(StackError):
    """A node did not become ready; the message ends with the tail of its log."""


def _say(message: str) -> None:
    print(f"[es] {message}", file=sys.stderr, flush=True)


# --- cache and distribution ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Directory caching this Elasticsearch version: ``$OTEL_OPENREPLAY_CACHE/elasticsearch/<version>``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "otel-openreplay"
    return Path(root) / "elasticsearch" / ES_VERSION


def distribution_home() -> Path:
    """Where the unpacked distribution lives once :func:`ensure_distribution` has run."""
    return cache_dir() / f"elasticsearch-{ES_VERSION}"


def ensure_distribution() -> Path:
    """Download, unpack and add the analysis plugin to the distribution, if not done yet; return its home.

    Idempotent and safe to call from concurrent processes (a file lock serialises them): a warm call
    downloads and builds nothing. The plugin is rebuilt and reinstalled when the digest of
    :data:`PLUGIN_SOURCES` changes; do that with no node running from this cache.
    """
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        home = distribution_home()
        if not home.is_dir():
            _unpack(_download(cache), cache, home)
        digest = plugin_digest()
        if _installed_plugin_digest(home) != digest:
            with tempfile.TemporaryDirectory(prefix="plugin-build-", dir=cache) as build:
                _install_plugin(home, _build_plugin(home, Path(build)), digest)
    return home


def plugin_digest() -> str:
    """SHA-256 over the plugin's files (names and contents): the key of the installed plugin."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PLUGIN_SOURCES.rglob("*") if p.is_file()):
        digest.update(path.relative_to(PLUGIN_SOURCES).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download(cache: Path) -> Path:
    target = cache / f"elasticsearch-{ES_VERSION}.zip"
    partial = cache / f"{target.name}.part"
    _say(f"downloading Elasticsearch {ES_VERSION} ({_DIST_SIZE_MB} MB)…")
    started = time.monotonic()
    digest = hashlib.sha512()
    # A constant https URL (S310 guards against user-controlled schemes such as file://).
    with urllib.request.urlopen(_DIST_URL, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != _DIST_SHA512:
        partial.unlink()
        raise StackError(f"{_DIST_URL} does not match its pinned SHA-512; refusing it")
    partial.replace(target)
    _say(f"downloaded in {time.monotonic() - started:.1f} s")
    return target


def _unpack(archive: Path, cache: Path, home: Path) -> None:
    _say("unpacking…")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unpack-", dir=cache) as staging:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                os.chmod(bundle.extract(member, staging), _zip_mode(member))
        (Path(staging) / home.name).replace(home)
    archive.unlink()
    _say(f"unpacked in {time.monotonic() - started:.1f} s")


def _zip_mode(member: zipfile.ZipInfo) -> int:
    """Mode bits of a zip entry, always readable by all (the server may run as another user)."""
    if member.is_dir():
        return 0o755
    mode = (member.external_attr >> 16) & 0o777 or 0o644
    return mode | 0o444 | (0o111 if mode & 0o100 else 0)


def _installed_plugin_digest(home: Path) -> str | None:
    marker = home / _PLUGIN_MARKER
    return marker.read_text().strip() if marker.is_file() else None


def _build_plugin(home: Path, build: Path) -> Path:
    """Compile the plugin with plain ``javac``/``jar`` and return its installable zip."""
    _say("building analysis plugin…")
    started = time.monotonic()
    _check_descriptor()
    jdk = java_home()
    classes, jar = build / "classes", build / f"{PLUGIN_NAME}.jar"
    sources = sorted(str(path) for path in (PLUGIN_SOURCES / "src").rglob("*.java"))
    classpath = os.pathsep.join(str(_one_jar(home / "lib", pattern)) for pattern in _PLUGIN_API_JARS)
    _run([str(jdk / "bin" / "javac"), "--release", "17", "-d", str(classes), "-cp", classpath, *sources])
    _run([str(jdk / "bin" / "jar"), "--create", "--file", str(jar), "-C", str(classes), "."])
    bundle = build / f"{PLUGIN_NAME}-{ES_VERSION}.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as out:  # flat: jar + descriptor + components
        out.write(jar, jar.name)
        for name in ("stable-plugin-descriptor.properties", "named_components.json"):
            out.write(PLUGIN_SOURCES / name, name)
    _say(f"built in {time.monotonic() - started:.1f} s")
    return bundle


def _check_descriptor() -> None:
    text = (PLUGIN_SOURCES / "stable-plugin-descriptor.properties").read_text()
    lines = {line.partition("=")[0].strip(): line.partition("=")[2].strip() for line in text.splitlines()}
    if lines.get("elasticsearch.version") != ES_VERSION or lines.get("name") != PLUGIN_NAME:
        wanted = f"name={PLUGIN_NAME} and elasticsearch.version={ES_VERSION}"
        raise StackError(f"es_plugin/stable-plugin-descriptor.properties must say {wanted}")


def _one_jar(lib: Path, pattern: str) -> Path:
    matches = sorted(lib.glob(pattern))
    if len(matches) != 1:
        raise StackError(f"expected one {pattern} in {lib}, found {[m.name for m in matches]}")
    return matches[0]


def _install_plugin(home: Path, bundle: Path, digest: str) -> None:
    _say("installing analysis plugin…")
    started = time.monotonic()
    (home / _PLUGIN_MARKER).unlink(missing_ok=True)
    tool = str(home / "bin" / "elasticsearch-plugin")
    env = _java_env(ES_PATH_CONF=str(home / "config"))
    if (home / "plugins" / PLUGIN_NAME).exists():
        _run([tool, "remove", PLUGIN_NAME], env=env)
    _run([tool, "install", "--batch", bundle.as_uri()], env=env)
    for path in [home / "plugins", *(home / "plugins").rglob("*")]:  # whatever this process's umask was
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    (home / _PLUGIN_MARKER).write_text(digest + "\n")
    _say(f"installed in {time.monotonic() - started:.1f} s")


# --- Java, accounts, processes ------------------------------------------------------------------------------


def java_home() -> Path:
    """The JDK that runs Elasticsearch and builds the plugin.

    ``ES_JAVA_HOME`` if set (taken as is); otherwise the first of ``JAVA_HOME``, the ``java`` on ``PATH``
    and ``/usr/lib/jvm/java-17-openjdk*`` whose major version is 17 to 24 (a Java 25 there is passed over).
    """
    explicit = os.environ.get("ES_JAVA_HOME")
    if explicit:
        return Path(explicit)
    for candidate in _java_candidates():
        if _java_major(candidate) in _SUPPORTED_JAVA:
            return candidate
    raise StackError("no Java 17-24 found (JAVA_HOME, java on PATH, /usr/lib/jvm); set ES_JAVA_HOME")


def _java_candidates() -> Iterator[Path]:
    if os.environ.get("JAVA_HOME"):
        yield Path(os.environ["JAVA_HOME"])
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parents[1]
    yield from sorted(Path("/usr/lib/jvm").glob("java-17-openjdk*"))


def _java_major(jdk: Path) -> int | None:
    """Major version from the JDK's ``release`` file (``JAVA_VERSION="17.0.15"``), or None."""
    release = jdk / "release"
    if not release.is_file():
        return None
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            parts = line.split("=", 1)[1].strip('"').split(".")
            major = parts[1] if parts[0] == "1" else parts[0]
            return int(major) if major.isdigit() else None
    return None


def _java_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
    env["ES_JAVA_HOME"] = str(java_home())
    env.update(extra)
    return env


@dataclass(frozen=True)
class _Account:
    """The unprivileged user a root process runs Elasticsearch as."""

    name: str
    uid: int
    gid: int


def _service_account() -> _Account | None:
    """None (run as the current user) unless root; then :data:`ES_USER`, created on first use."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(ES_USER)
        return _Account(ES_USER, entry.pw_uid, entry.pw_gid)
    _say(f"creating system user {ES_USER} (Elasticsearch refuses to run as root)…")
    shell = shutil.which("nologin") or "/bin/false"
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    # Exit status 9 means another process created the user meanwhile: the lookup below settles it.
    subprocess.run([*command, "--shell", shell, ES_USER], capture_output=True, check=False)
    try:
        entry = pwd.getpwnam(ES_USER)
    except KeyError:
        raise StackError(f"could not create user {ES_USER} with useradd") from None
    return _Account(ES_USER, entry.pw_uid, entry.pw_gid)


def _run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    account: _Account | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a short tool to completion; raise :class:`StackError` with its output if it fails."""
    done = subprocess.run(
        list(command),
        input=stdin,
        env=None if env is None else dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
    )
    if done.returncode != 0:
        raise StackError(f"{Path(command[0]).name} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (another process may still take one)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((_LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def terminate_process_group(leader: int, pids: Sequence[int], *, timeout: float = 60.0) -> None:
    """SIGTERM the group ``leader`` leads, SIGKILL it after ``timeout``; return once ``pids`` are gone.

    Only for groups this module created (a node's launcher leads its own session).
    """
    _signal_group(leader, signal.SIGTERM)
    if not _wait_gone(pids, timeout):
        _signal_group(leader, signal.SIGKILL)
        _wait_gone(pids, 30.0)


def _signal_group(leader: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signum)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def cluster_health(url: str, user: str, password: str) -> dict[str, Any] | None:
    """``GET <url>/_cluster/health`` as ``user``; None if it does not answer 200 (down, starting, 401)."""
    return _get_json(f"{url}/_cluster/health", user, password)


def _get_json(url: str, user: str, password: str) -> dict[str, Any] | None:
    """GET ``url`` with basic auth; the JSON body on 2xx, None on any failure (refused, 401, 503, timeout)."""
    token = b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310 (http URL we built)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (http URL we built)
            body = json.load(response)
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


# --- nodes --------------------------------------------------------------------------------------------------

# Ends a node's processes, given its launcher (the process group leader) and the pids to wait for.
_Ender = Callable[[int, Sequence[int]], None]


@dataclass(frozen=True)
class _Layout:
    """A node's own directories; ``home`` is the shared distribution unless the server user can't reach it."""

    base: Path
    home: Path

    @property
    def config(self) -> Path:
        return self.base / "config"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    @property
    def pid_file(self) -> Path:
        return self.base / "elasticsearch.pid"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"


class ElasticsearchNode:
    """One Elasticsearch node on 127.0.0.1 with security on, for tests.

    Its config, data, logs and keystore live in a fresh temp dir (``base_dir`` chooses the parent; as root,
    every directory above it must be world-searchable, as ``/tmp`` is but pytest's ``tmp_path`` is not);
    ``remove()`` deletes it. Ports are chosen when the node is created and kept across restarts.
    ``settings`` are extra ``elasticsearch.yml`` entries (flat keys, JSON-able values) over the defaults;
    ``None`` removes a default, e.g. ``{"discovery.type": None}`` for a cluster. Static settings such as
    ``thread_pool.write.queue_size`` work. The ``elastic`` password is random per node unless given. As
    root, the server runs as :data:`ES_USER`.
    """

    def __init__(
        self,
        *,
        name: str = "node-1",
        cluster_name: str | None = None,
        http_port: int | None = None,
        transport_port: int | None = None,
        heap_mb: int = 512,
        settings: Mapping[str, object] | None = None,
        password: str | None = None,
        base_dir: Path | None = None,
    ) -> None:
        spare = free_ports(2) if http_port is None or transport_port is None else [0, 0]
        self.name = name
        self.cluster_name = cluster_name or f"otelor-{secrets.token_hex(4)}"
        self.http_port = http_port or spare[0]
        self.transport_port = transport_port or spare[1]
        self.heap_mb = heap_mb
        self._settings = dict(settings or {})
        self._password = password or secrets.token_urlsafe(18)
        self._parent = base_dir
        self._layout: _Layout | None = None
        self._account: _Account | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    # -- what callers read

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<http port>``."""
        return f"http://{_LOOPBACK}:{self.http_port}"

    @property
    def urls(self) -> list[str]:
        """``[url]``: the hosts list a client is given."""
        return [self.url]

    @property
    def user(self) -> str:
        """The superuser's name, ``elastic``."""
        return SUPERUSER

    @property
    def password(self) -> str:
        """The superuser's password (bootstrapped from this node's keystore)."""
        return self._password

    @property
    def base_dir(self) -> Path | None:
        """The node's own directory (config, data, logs), or None before the first start."""
        return self._layout.base if self._layout else None

    @property
    def pid(self) -> int | None:
        """PID of the launcher, which leads the node's process group; None when not started by this object."""
        return self._process.pid if self._process else None

    @property
    def server_pid(self) -> int | None:
        """PID of the server JVM (from its pid file), or None before it wrote one."""
        if self._layout is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            return int(self._layout.pid_file.read_text().strip())
        return None

    @property
    def running(self) -> bool:
        """True while the launcher started by this object has not exited."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle

    def start(self) -> None:
        """Prepare the node on first call (distribution, dirs, config, keystore), then launch it.

        Does not wait: call :meth:`wait_ready`.
        """
        if self.running:
            raise StackError(f"{self.name} is already running")
        dist_home = ensure_distribution()
        if self._layout is None:
            self._account = _service_account()
            self._layout = self._prepare(dist_home)
        self._process = self._launch(self._layout)
        self._started_at = time.monotonic()

    def wait_ready(self, timeout: float = 120.0, *, nodes: int = 1) -> None:
        """Block until health is green or yellow with ``nodes`` nodes and ``elastic`` authenticates.

        Raises :class:`ElasticsearchStartError` (with the log's tail) if the process exits or time runs out.
        """
        layout, process = self._require_started()
        deadline = time.monotonic() + timeout
        while not self._ready(nodes):
            if process.poll() is not None:
                raise self._start_error(f"exited with status {process.returncode}", layout)
            if time.monotonic() > deadline:
                raise self._start_error(f"not ready after {timeout:.0f} s", layout)
            time.sleep(0.25)
        _say(f"{self.name} ready at {self.url} in {time.monotonic() - self._started_at:.1f} s")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the node and wait for it to exit (SIGKILL after ``timeout``); data is kept."""
        self._end(lambda leader, pids: terminate_process_group(leader, pids, timeout=timeout))

    def kill(self) -> None:
        """SIGKILL the node (launcher and server) at once, as a crash would; data is kept."""

        def hard(leader: int, pids: Sequence[int]) -> None:
            _signal_group(leader, signal.SIGKILL)
            _wait_gone(pids, 30.0)

        self._end(hard)

    def restart(self, timeout: float = 120.0) -> None:
        """Stop, start again on the same ports with the same data and password, and wait until ready."""
        self.stop()
        self.start()
        self.wait_ready(timeout)

    def remove(self) -> None:
        """Stop the node if running and delete its directory."""
        self.stop()
        if self._layout is not None:
            shutil.rmtree(self._layout.base, ignore_errors=True)
            self._layout = None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the node printed (console output, which includes the server log)."""
        if self._layout is None or not self._layout.console_log.is_file():
            return "(no log yet)"
        with self._layout.console_log.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64_000))
            text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ElasticsearchNode:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ElasticsearchNode {self.name} {self.url} {state}>"

    # -- internals

    def _require_started(self) -> tuple[_Layout, subprocess.Popen[bytes]]:
        if self._layout is None or self._process is None:
            raise StackError(f"{self.name} was not started")
        return self._layout, self._process

    def _prepare(self, dist_home: Path) -> _Layout:
        parent = Path(self._parent or tempfile.gettempdir())
        if self._account is not None and not _traversable_by_others(parent):
            raise StackError(f"{ES_USER} cannot reach {parent}: choose a base_dir all users may traverse")
        base = Path(tempfile.mkdtemp(prefix=f"otelor-es-{self.name}-", dir=parent))
        layout = _Layout(base, _home_for(dist_home, base, self._account))
        shutil.copytree(dist_home / "config", layout.config)
        for directory in (layout.data, layout.logs, layout.tmp):
            directory.mkdir()
        (layout.config / "elasticsearch.yml").write_text(_render_yaml(self._effective_settings(layout)))
        heap = f"-Xms{self.heap_mb}m\n-Xmx{self.heap_mb}m\n"
        (layout.config / "jvm.options.d" / "heap.options").write_text(heap)
        if self._account is not None:
            _chown_tree(base, self._account, skip=layout.home)
        keystore = str(layout.home / "bin" / "elasticsearch-keystore")
        _run(
            [keystore, "add", "--stdin", "--force", "bootstrap.password"],
            env=self._env(layout),
            stdin=self._password,
            account=self._account,
            cwd=layout.base,
        )
        return layout

    def _effective_settings(self, layout: _Layout) -> dict[str, object]:
        defaults: dict[str, object] = {
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "path.data": str(layout.data),
            "path.logs": str(layout.logs),
            "network.host": _LOOPBACK,
            "http.port": self.http_port,
            "transport.port": self.transport_port,
            "discovery.type": "single-node",
            "xpack.security.enabled": True,
            "xpack.security.http.ssl.enabled": False,
            "xpack.security.transport.ssl.enabled": False,
            # Test machines often have fuller disks than production; never turn indices read-only for that.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        merged = {**defaults, **self._settings}
        return {key: value for key, value in merged.items() if value is not None}

    def _env(self, layout: _Layout) -> dict[str, str]:
        return _java_env(ES_PATH_CONF=str(layout.config), ES_TMPDIR=str(layout.tmp))

    def _launch(self, layout: _Layout) -> subprocess.Popen[bytes]:
        layout.pid_file.unlink(missing_ok=True)
        with layout.console_log.open("ab") as console:
            return subprocess.Popen(
                [str(layout.home / "bin" / "elasticsearch"), "-p", str(layout.pid_file)],
                cwd=layout.base,
                env=self._env(layout),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop/kill reach launcher and server together
                user=self._account.uid if self._account else None,
                group=self._account.gid if self._account else None,
                extra_groups=[] if self._account else None,
            )

    def _ready(self, nodes: int) -> bool:
        health = cluster_health(self.url, self.user, self._password)
        if not health or health.get("status") not in ("green", "yellow"):
            return False
        if int(health.get("number_of_nodes", 0)) < nodes:
            return False
        return _get_json(f"{self.url}/_security/_authenticate", self.user, self._password) is not None

    def _start_error(self, what: str, layout: _Layout) -> ElasticsearchStartError:
        where = f"{self.url}, {layout.base}"
        return ElasticsearchStartError(
            f"Elasticsearch {self.name} ({where}) {what}; last log lines:\n{self.log_tail()}"
        )

    def _end(self, how: _Ender) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            server = self.server_pid
            how(process.pid, [process.pid] + ([server] if server else []))
        process.wait()
        self._process = None


def _home_for(dist_home: Path, base: Path, account: _Account | None) -> Path:
    """The distribution itself, or a hard-linked mirror in ``base`` if the server user can't reach the cache.

    As root the cache is usually under ``/root`` (mode 0700), which :data:`ES_USER` cannot traverse.
    """
    if account is None or _traversable_by_others(dist_home):
        return dist_home
    mirror = base / "home"
    shutil.copytree(dist_home, mirror, copy_function=_link_or_copy)
    return mirror


def _traversable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def _chown_tree(base: Path, account: _Account, *, skip: Path) -> None:
    """Give the node's own directories to the server user; never ``skip`` (hard links into the cache)."""
    os.chown(base, account.uid, account.gid)
    for root, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if Path(root, d) != skip]
        for name in dirs + files:
            os.chown(Path(root, name), account.uid, account.gid, follow_symlinks=False)


def _render_yaml(settings: Mapping[str, object]) -> str:
    """Flat ``key: value`` lines; JSON scalars and lists are valid YAML, so no YAML library is needed."""
    lines = ["# Generated by tests/stack/es.py for one test node."]
    lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


class ElasticsearchCluster:
    """``size`` master-eligible nodes on loopback forming one cluster (security on, transport TLS off).

    Allowed without TLS because loopback-only nodes run in development mode. With two nodes only one votes:
    killing the elected master stops writes (kill the other node, or use three). All nodes share one password.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        heap_mb: int = 384,
        settings: Mapping[str, object] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        if size < 2:
            raise ValueError("a cluster has at least 2 nodes; use ElasticsearchNode for one")
        ports = free_ports(2 * size)
        names = [f"node-{i}" for i in range(1, size + 1)]
        shared: dict[str, object] = {
            "discovery.type": None,
            "discovery.seed_hosts": [f"{_LOOPBACK}:{ports[2 * i + 1]}" for i in range(size)],
            "cluster.initial_master_nodes": names,
            **(settings or {}),
        }
        cluster_name, password = f"otelor-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
        self.nodes = [
            ElasticsearchNode(
                name=name,
                cluster_name=cluster_name,
                http_port=ports[2 * i],
                transport_port=ports[2 * i + 1],
                heap_mb=heap_mb,
                settings=shared,
                password=password,
                base_dir=base_dir,
            )
            for i, name in enumerate(names)
        ]

    @property
    def url(self) -> str:
        """URL of the first node that is running (of the first node if none is)."""
        return next((node.url for node in self.nodes if node.running), self.nodes[0].url)

    @property
    def urls(self) -> list[str]:
        """Every node's URL: give all to a client so it fails over."""
        return [node.url for node in self.nodes]

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def password(self) -> str:
        return self.nodes[0].password

    def start(self) -> None:
        """Start every node, in parallel (each first writes its keystore: seconds of JVM); no waiting."""
        ensure_distribution()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.start(), self.nodes))

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until every node sees all nodes, health is green/yellow, and ``elastic`` authenticates."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()), nodes=len(self.nodes))

    def stop(self) -> None:
        """Stop every node (data kept)."""
        for node in self.nodes:
            node.stop()

    def remove(self) -> None:
        """Stop every node and delete their directories."""
        for node in self.nodes:
            node.remove()

    def __enter__(self) -> ElasticsearchCluster:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.remove()


# --- security administration --------------------------------------------------------------------------------


class Endpoint(Protocol):
    """What the helpers need from a node or cluster."""

    @property
    def urls(self) -> list[str]: ...

    @property
    def user(self) -> str: ...

    @property
    def password(self) -> str: ...


@dataclass(frozen=True)
class ApiKey:
    """An API key as Elasticsearch returns it; ``encoded`` is base64(``id:api_key``)."""

    id: str
    api_key: str
    encoded: str

    @property
    def header(self) -> str:
        """The ``Authorization`` header value."""
        return f"ApiKey {self.encoded}"


def client(
    endpoint: Endpoint,
    *,
    basic_auth: tuple[str, str] | None = None,
    api_key: str | tuple[str, str] | None = None,
    **options: Any,
) -> Elasticsearch:
    """An ``Elasticsearch`` client for ``endpoint``: the superuser unless ``basic_auth`` or ``api_key``.

    Other keyword arguments go to ``Elasticsearch`` (``request_timeout`` defaults to 30 s). Close it after.
    """
    if basic_auth is None and api_key is None:
        basic_auth = (endpoint.user, endpoint.password)
    return Elasticsearch(endpoint.urls, basic_auth=basic_auth, api_key=api_key, **{"request_timeout": 30, **options})


def create_role(endpoint: Endpoint, name: str, body: Mapping[str, Any]) -> None:
    """Create or replace the native role ``name`` (``body`` as for ``PUT /_security/role/<name>``)."""
    with contextlib.closing(client(endpoint)) as es:
        es.security.put_role(name=name, body=dict(body), refresh="true")


def create_user(endpoint: Endpoint, username: str, password: str, roles: Sequence[str]) -> None:
    """Create or replace the native user ``username`` with ``roles``."""
    with contextlib.closing(client(endpoint)) as es:
        es.security.put_user(username=username, password=password, roles=list(roles), refresh="true")


def create_api_key(
    endpoint: Endpoint, name: str, role_descriptors: Mapping[str, Any] | None = None, **auth: Any
) -> ApiKey:
    """Create an API key (``POST /_security/api_key``) as the superuser, or as ``auth`` (see :func:`client`).

    Without ``role_descriptors`` the key has its creator's privileges.
    """
    body: dict[str, Any] = {"name": name}
    if role_descriptors is not None:
        body["role_descriptors"] = dict(role_descriptors)
    with contextlib.closing(client(endpoint, **auth)) as es:
        created = es.security.create_api_key(body=body, refresh="true")
    return ApiKey(created["id"], created["api_key"], created["encoded"])
