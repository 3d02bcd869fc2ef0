"""A real Elasticsearch for the project's tests, demo and benchmarks.

Fetches Elastic's integ-test distribution of Elasticsearch (Maven Central) into a per-user, per-version
cache, adds to 8.19.21 the test-only analysis plugin built from ``tests/stack/es_plugin`` (without it that
distribution cannot create its security index, so native users, roles and API keys fail), and runs single
nodes or a small cluster on 127.0.0.1 with security on, TLS off and a ``bootstrap.password`` for
``elastic`` generated per node. :data:`DISTRIBUTIONS` lists the versions: 8.19.21 (the default), 8.0.0
and 7.17.29; those two have no plugin (7.x has no stable plugin API), so :func:`add_user` puts their
users in the file realm. The processes are run by :mod:`tests.stack.process`.

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
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from base64 import b64encode
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from elasticsearch import Elasticsearch

from tests.stack import cache as shared_cache
from tests.stack.process import Account, ManagedService, ServiceProcess, StackError, free_ports, new_password

ES_VERSION = "8.19.21"
"""The default Elasticsearch: the newest ``integ-test-zip`` on Maven Central (which has no 9.x)."""

CACHE_ENV = shared_cache.CACHE_ENV

ES_USER = "otelor-es"
"""System user that runs Elasticsearch when this code runs as root (Elasticsearch refuses root)."""

SUPERUSER = "elastic"
"""The built-in superuser whose password each node's keystore bootstraps."""

PLUGIN_NAME = "otel-openreplay-security-analysis"
"""Name of the stable analysis plugin (must match ``name`` in its descriptor)."""

PLUGIN_SOURCES = Path(__file__).with_name("es_plugin")
"""Java sources and descriptor of the plugin; a change to any file there reinstalls it."""


@dataclass(frozen=True)
class Distribution:
    """One ``integ-test-zip`` release of Elasticsearch on Maven Central, and what the stack does with it.

    ``sha512`` is pinned so a corrupted or swapped download is refused: 8.19.21's is Maven Central's own
    ``.sha512``; older releases publish only ``.sha1``/``.md5`` there, so theirs was computed from a
    download whose SHA-1 matched Maven Central's. ``api_keys``: the stable analysis plugin is built and
    installed, so the security index (native users, roles, API keys) works; without it (7.x has no stable
    plugin API) users and roles live in the file realm (:func:`add_user` handles both).
    """

    version: str
    sha512: str
    size_mb: int
    api_keys: bool

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def url(self) -> str:
        return (
            "https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/"
            f"{self.version}/elasticsearch-{self.version}.zip"
        )


DISTRIBUTIONS: dict[str, Distribution] = {
    dist.version: dist
    for dist in (
        Distribution(
            "8.19.21",
            "cf6b0a93860d329937ae7f913ec5073b0c726c77639764b93fc83a304aa1dd9d"
            "4defcfa2849948eea3b0b47c2065f994908603939fc2a4774c9c4d868c5ec1dd",
            107,
            api_keys=True,
        ),
        # The oldest 8.x release: the package claims every 8.x server.
        Distribution(
            "8.0.0",
            "6a693996f63f55d5da3e0a2d4bd11ce232cc72ddbd0908cfd49ca44f07ae8e0d"
            "2d72e8ef3042c6ac8368c77de72f3cabd18bf9f86937cfd5df91f700821d35ae",
            63,
            api_keys=False,
        ),
        # The last 7.x release (7.17 is the 7.x line still maintained); runs on Java 17.
        Distribution(
            "7.17.29",
            "24abc37b17b5709c41fba542d0cfb052bc41622326fed2183a67707db3cbd46e"
            "8469885ecb48c67265d48427be41f9389efff7db99d367b3b6151c65cd64aa43",
            58,
            api_keys=False,
        ),
    )
}
"""Every server version the project tests, newest first."""

OLDEST_8X = "8.0.0"
"""The oldest 8.x server the package claims (and tests)."""

LEGACY_7X = "7.17.29"
"""The 7.x server the package supports (and tests)."""


def distribution(version: str = ES_VERSION) -> Distribution:
    """The :class:`Distribution` of ``version``; :class:`StackError` for a version the stack does not know."""
    try:
        return DISTRIBUTIONS[version]
    except KeyError:
        raise StackError(f"Elasticsearch {version} is not managed here; known: {', '.join(DISTRIBUTIONS)}") from None


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


class ElasticsearchStartError(StackError):
    """A node did not become ready; the message ends with the tail of its log."""


def _say(message: str) -> None:
    print(f"[es] {message}", file=sys.stderr, flush=True)


# --- cache and distribution ---------------------------------------------------------------------------------


def cache_dir(version: str = ES_VERSION) -> Path:
    """Directory caching one Elasticsearch version: ``$OTEL_OPENREPLAY_CACHE/elasticsearch/<version>``."""
    return shared_cache.root() / "elasticsearch" / version


def distribution_home(version: str = ES_VERSION) -> Path:
    """Where the unpacked distribution lives once :func:`ensure_distribution` has run."""
    return cache_dir(version) / f"elasticsearch-{version}"


def ensure_distribution(version: str = ES_VERSION) -> Path:
    """Download, unpack (and for 8.19.21 add the analysis plugin to) a distribution if not done yet; return its home.

    Idempotent and safe to call from concurrent processes (a file lock serialises them): a warm call
    downloads and builds nothing. The plugin is rebuilt and reinstalled when the digest of
    :data:`PLUGIN_SOURCES` changes; do that with no node running from this cache.
    """
    dist = distribution(version)
    cache = cache_dir(version)
    cache.mkdir(parents=True, exist_ok=True)
    with shared_cache.locked(cache / ".lock"):
        home = distribution_home(version)
        if not home.is_dir():
            _unpack(_download(dist, cache), cache, home)
        digest = plugin_digest()
        if dist.api_keys and _installed_plugin_digest(home) != digest:
            with tempfile.TemporaryDirectory(prefix="plugin-build-", dir=cache) as build:
                _install_plugin(home, _build_plugin(home, Path(build), version), digest)
    return home


def plugin_digest() -> str:
    """SHA-256 over the plugin's files (names and contents): the key of the installed plugin."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PLUGIN_SOURCES.rglob("*") if p.is_file()):
        digest.update(path.relative_to(PLUGIN_SOURCES).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _download(dist: Distribution, cache: Path) -> Path:
    target = cache / f"elasticsearch-{dist.version}.zip"
    partial = cache / f"{target.name}.part"
    _say(f"downloading Elasticsearch {dist.version} ({dist.size_mb} MB)…")
    started = time.monotonic()
    digest = hashlib.sha512()
    # A constant https URL (S310 guards against user-controlled schemes such as file://).
    with urllib.request.urlopen(dist.url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != dist.sha512:
        partial.unlink()
        raise StackError(f"{dist.url} does not match its pinned SHA-512; refusing it")
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


def _build_plugin(home: Path, build: Path, version: str) -> Path:
    """Compile the plugin with plain ``javac``/``jar`` and return its installable zip."""
    _say("building analysis plugin…")
    started = time.monotonic()
    _check_descriptor(version)
    jdk = java_home()
    classes, jar = build / "classes", build / f"{PLUGIN_NAME}.jar"
    sources = sorted(str(path) for path in (PLUGIN_SOURCES / "src").rglob("*.java"))
    classpath = os.pathsep.join(str(_one_jar(home / "lib", pattern)) for pattern in _PLUGIN_API_JARS)
    _run([str(jdk / "bin" / "javac"), "--release", "17", "-d", str(classes), "-cp", classpath, *sources])
    _run([str(jdk / "bin" / "jar"), "--create", "--file", str(jar), "-C", str(classes), "."])
    bundle = build / f"{PLUGIN_NAME}-{version}.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as out:  # flat: jar + descriptor + components
        out.write(jar, jar.name)
        for name in ("stable-plugin-descriptor.properties", "named_components.json"):
            out.write(PLUGIN_SOURCES / name, name)
    _say(f"built in {time.monotonic() - started:.1f} s")
    return bundle


def _check_descriptor(version: str) -> None:
    text = (PLUGIN_SOURCES / "stable-plugin-descriptor.properties").read_text()
    lines = {line.partition("=")[0].strip(): line.partition("=")[2].strip() for line in text.splitlines()}
    if lines.get("elasticsearch.version") != version or lines.get("name") != PLUGIN_NAME:
        wanted = f"name={PLUGIN_NAME} and elasticsearch.version={version}"
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


def _service_account() -> Account | None:
    """None (run as the current user) unless root; then :data:`ES_USER`, created on first use."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(ES_USER)
        return Account(ES_USER, entry.pw_uid, entry.pw_gid)
    _say(f"creating system user {ES_USER} (Elasticsearch refuses to run as root)…")
    shell = shutil.which("nologin") or "/bin/false"
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    # Exit status 9 means another process created the user meanwhile: the lookup below settles it.
    subprocess.run([*command, "--shell", shell, ES_USER], capture_output=True, check=False)
    try:
        entry = pwd.getpwnam(ES_USER)
    except KeyError:
        raise StackError(f"could not create user {ES_USER} with useradd") from None
    return Account(ES_USER, entry.pw_uid, entry.pw_gid)


def _run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    account: Account | None = None,
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


class ElasticsearchNode(ManagedService):
    """One Elasticsearch node on 127.0.0.1 with security on, for tests.

    Its config, data, logs and keystore live in a fresh temp dir (``base_dir`` chooses the parent; as root,
    every directory above it must be world-searchable, as ``/tmp`` is but pytest's ``tmp_path`` is not);
    ``remove()`` deletes it. Ports are chosen when the node is created and kept across restarts.
    ``settings`` are extra ``elasticsearch.yml`` entries (flat keys, JSON-able values) over the defaults;
    ``None`` removes a default, e.g. ``{"discovery.type": None}`` for a cluster. Static settings such as
    ``thread_pool.write.queue_size`` work. The ``elastic`` password is random per node unless given. As
    root, the server runs as :data:`ES_USER`. ``version`` is one of :data:`DISTRIBUTIONS` (default
    :data:`ES_VERSION`); :attr:`api_keys` says whether it can make API keys and native users.
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
        version: str = ES_VERSION,
    ) -> None:
        spare = free_ports(2) if http_port is None or transport_port is None else [0, 0]
        self.distribution = distribution(version)
        self.name = name
        self.cluster_name = cluster_name or f"otelor-{secrets.token_hex(4)}"
        self.http_port = http_port or spare[0]
        self.transport_port = transport_port or spare[1]
        self.heap_mb = heap_mb
        self._settings = dict(settings or {})
        self._password = password or new_password()
        self._parent = base_dir
        self._layout: _Layout | None = None
        self._account: Account | None = None
        self._process: ServiceProcess | None = None

    # -- what callers read

    @property
    def version(self) -> str:
        """The server's version, e.g. ``8.19.21``."""
        return self.distribution.version

    @property
    def api_keys(self) -> bool:
        """Whether this node can make API keys, native users and roles (else: file-realm users only)."""
        return self.distribution.api_keys

    @property
    def config_dir(self) -> Path | None:
        """The node's ``ES_PATH_CONF`` (``roles.yml``, ``users``…), or None before the first start."""
        return self._layout.config if self._layout else None

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
        return self._process is not None and self._process.running

    # -- lifecycle

    def start(self) -> None:
        """Prepare the node on first call (distribution, dirs, config, keystore), then launch it.

        Does not wait: call :meth:`wait_ready`.
        """
        if self.running:
            raise StackError(f"{self.name} is already running")
        dist_home = ensure_distribution(self.version)
        if self._layout is None:
            self._account = _service_account()
            self._layout = self._prepare(dist_home)
            self._process = ServiceProcess(
                f"Elasticsearch {self.version} {self.name} ({self.url}, {self._layout.base})",
                self._layout.console_log,
            )
        layout, process = self._require_started()
        layout.pid_file.unlink(missing_ok=True)
        process.start(
            [str(layout.home / "bin" / "elasticsearch"), "-p", str(layout.pid_file)],
            env=self._env(layout),
            cwd=layout.base,
            account=self._account,
        )

    def wait_ready(self, timeout: float = 120.0, *, nodes: int = 1) -> None:
        """Block until health is green or yellow with ``nodes`` nodes and ``elastic`` authenticates.

        Raises :class:`ElasticsearchStartError` (with the log's tail) if the process exits or time runs out.
        """
        _, process = self._require_started()
        took = process.wait_ready(lambda: self._ready(nodes), timeout, ElasticsearchStartError)
        _say(f"{self.name} ({self.version}) ready at {self.url} in {took:.1f} s")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the node and wait for it to exit (SIGKILL after ``timeout``); data is kept."""
        if self._process is not None:
            self._process.stop(timeout, extra_pids=self._server_pids())

    def kill(self) -> None:
        """SIGKILL the node (launcher and server) at once, as a crash would; data is kept."""
        if self._process is not None:
            self._process.kill(extra_pids=self._server_pids())

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
            self._process = None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the node printed (console output, which includes the server log)."""
        return self._process.log_tail(lines) if self._process is not None else "(no log yet)"

    def users_tool(self, *args: str) -> str:
        """Run ``bin/elasticsearch-users`` on the node's config, as its user (file-realm users).

        8.0.0's integ-test-zip lacks that script but has its class: run it the way 7.x's script does.
        """
        layout, _ = self._require_started()
        env = self._env(layout)
        script = layout.home / "bin" / "elasticsearch-users"
        if not script.is_file():
            script = layout.home / "bin" / "elasticsearch-cli"
            env["ES_MAIN_CLASS"] = "org.elasticsearch.xpack.security.authc.file.tool.UsersTool"
            env["ES_ADDITIONAL_SOURCES"] = "x-pack-env;x-pack-security-env"
        return _run([str(script), *args], env=env, account=self._account, cwd=layout.base)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ElasticsearchNode {self.name} {self.url} {state}>"

    # -- internals

    def _require_started(self) -> tuple[_Layout, ServiceProcess]:
        if self._layout is None or self._process is None:
            raise StackError(f"{self.name} was not started")
        return self._layout, self._process

    def _server_pids(self) -> list[int]:
        server = self.server_pid
        return [server] if server else []

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
        _pin_jvm_paths(layout)
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
            # File-realm users and roles (add_user) take effect within a second, not five.
            "resource.reload.interval.high": "1s",
        }
        merged = {**defaults, **self._settings}
        return {key: value for key, value in merged.items() if value is not None}

    def _env(self, layout: _Layout) -> dict[str, str]:
        return _java_env(ES_PATH_CONF=str(layout.config), ES_TMPDIR=str(layout.tmp))

    def _ready(self, nodes: int) -> bool:
        health = cluster_health(self.url, self.user, self._password)
        if not health or health.get("status") not in ("green", "yellow"):
            return False
        if int(health.get("number_of_nodes", 0)) < nodes:
            return False
        return _get_json(f"{self.url}/_security/_authenticate", self.user, self._password) is not None


def _pin_jvm_paths(layout: _Layout) -> None:
    """Point 7.x's relative ``jvm.options`` paths (GC log, error file, heap dumps) at the node's own dirs.

    7.x's launcher runs from the distribution's home, which the server user may not write (8.x's options
    have no such paths).
    """
    options = layout.config / "jvm.options"
    text = options.read_text()
    pinned = text.replace("=logs/", f"={layout.logs}/").replace("HeapDumpPath=data\n", f"HeapDumpPath={layout.data}\n")
    if pinned != text:
        options.write_text(pinned)


def _home_for(dist_home: Path, base: Path, account: Account | None) -> Path:
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


def _chown_tree(base: Path, account: Account, *, skip: Path) -> None:
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


class ElasticsearchCluster(ManagedService):
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
        cluster_name, password = f"otelor-{secrets.token_hex(4)}", new_password()
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


def add_user(node: ElasticsearchNode, username: str, password: str, role: str, body: Mapping[str, Any]) -> None:
    """Give ``node`` the role ``role`` (``body`` as for ``PUT /_security/role``) and a user holding only it.

    Native role and user where the node has a security index (:attr:`ElasticsearchNode.api_keys`);
    otherwise the file realm, as a 7.x or early 8.x cluster without the analysis plugin must: the role
    goes into the node's ``config/roles.yml`` and the user is added with ``bin/elasticsearch-users
    useradd``. Returns once the user authenticates with the role's index privileges (the file realm
    reloads its files about every second here).
    """
    if node.api_keys:
        create_role(node, role, body)
        create_user(node, username, password, [role])
        return
    config = node.config_dir
    if config is None:
        raise StackError(f"{node.name} was not started")
    with (config / "roles.yml").open("a") as roles:
        roles.write(f"\n{role}: {json.dumps(dict(body))}\n")  # JSON is YAML
    node.users_tool("useradd", username, "-p", password, "-r", role)
    wanted = {"index": [{"names": e["names"], "privileges": e["privileges"]} for e in body.get("indices", [])]}
    deadline = time.monotonic() + 30
    while not _has_privileges(node.url, username, password, wanted):
        if time.monotonic() > deadline:
            raise StackError(f"file-realm user {username} of {node.name} never got role {role}")
        time.sleep(0.2)


def _has_privileges(url: str, user: str, password: str, wanted: Mapping[str, Any]) -> bool:
    token = b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (http URL we built)
        f"{url}/_security/user/_has_privileges",
        data=json.dumps(wanted).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (http URL we built)
            return bool(json.load(response).get("has_all_requested"))
    except (OSError, ValueError):
        return False
