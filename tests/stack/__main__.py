"""Command line for the project's real services: ``python -m tests.stack es up|down|status``.

``es up`` starts one Elasticsearch node in the background (it outlives this command) and prints
``OPENREPLAY_ES_*`` lines for ``eval``; ``es down`` stops it and deletes its data; ``es status`` says whether
it answers. ``python -m tests.stack collector ...`` is handed to ``tests.stack.collector:cli``.

It must never print a password anywhere but stdout, nor keep one anywhere but its state file (mode 0600, in
the cache), nor signal a process that its state file does not name as an Elasticsearch it started.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.stack import es
from tests.stack.process import terminate_process_group

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


@dataclass(frozen=True)
class _State:
    """What ``es up`` leaves behind for ``es down`` and ``es status``."""

    url: str
    user: str
    password: str
    pid: int  # the launcher, leader of the node's process group
    server_pid: int
    base_dir: str
    version: str = es.ES_VERSION

    def env_lines(self) -> list[str]:
        return [
            f"OPENREPLAY_ES_URL={self.url}",
            f"OPENREPLAY_ES_USER={self.user}",
            f"OPENREPLAY_ES_PASSWORD={self.password}",
        ]


def _state_file() -> Path:
    return es.cache_dir() / "es-up.json"


def _load_state() -> _State | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        return _State(**json.loads(_state_file().read_text()))
    return None


def _save_state(state: _State) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(state), out, indent=2)


def _is_our_node(state: _State) -> bool:
    """True if the state's launcher still runs and is an Elasticsearch launcher (guards against pid reuse)."""
    try:
        command = Path(f"/proc/{state.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"elasticsearch" in command and state.base_dir.encode() in command


def _es_up(args: argparse.Namespace) -> int:
    state = _load_state()
    if state and _is_our_node(state):
        print(f"[es] already running at {state.url}", file=sys.stderr)
    else:
        node = es.ElasticsearchNode(http_port=args.port, heap_mb=args.heap_mb, version=args.version)
        node.start()
        try:
            node.wait_ready(args.timeout)
        except es.StackError:
            node.remove()
            raise
        state = _state_of(node)
        _save_state(state)
    print("\n".join(state.env_lines()))
    return EXIT_OK


def _state_of(node: es.ElasticsearchNode) -> _State:
    if node.pid is None or node.server_pid is None or node.base_dir is None:
        raise es.StackError(f"{node.name} is ready but wrote no pid file")
    return _State(node.url, node.user, node.password, node.pid, node.server_pid, str(node.base_dir), node.version)


def _es_down(args: argparse.Namespace) -> int:
    state = _load_state()
    if state is None:
        print("[es] no node started by `es up`", file=sys.stderr)
        return EXIT_OK
    if _is_our_node(state):
        terminate_process_group(state.pid, [state.pid, state.server_pid], timeout=args.timeout)
    shutil.rmtree(state.base_dir, ignore_errors=True)
    _state_file().unlink(missing_ok=True)
    print(f"[es] stopped {state.url} and removed {state.base_dir}", file=sys.stderr)
    return EXIT_OK


def _es_status(args: argparse.Namespace) -> int:
    state = _load_state()
    if state is None or not _is_our_node(state):
        print("Elasticsearch: not running (start it with `python -m tests.stack es up`)")
        return EXIT_NOT_RUNNING
    health = es.cluster_health(state.url, state.user, state.password)
    status = health.get("status", "not answering") if health else "not answering"
    print(f"Elasticsearch {state.version} at {state.url}: {status} (pid {state.pid}, data {state.base_dir})")
    return EXIT_OK if health else EXIT_ERROR


def _collector(argv: Sequence[str]) -> int:
    """Hand over to the collector's own CLI, imported only when asked for."""
    try:
        module = importlib.import_module("tests.stack.collector")
    except ModuleNotFoundError as missing:
        if missing.name != "tests.stack.collector":
            raise
        return _fail("tests.stack.collector does not exist yet", "use `es` for now", EXIT_USAGE)
    return int(module.cli(list(argv)))


def _parser() -> argparse.ArgumentParser:
    about = "Start and stop the project's real services for the demo and manual test runs."
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=about)
    services = parser.add_subparsers(dest="service", required=True)
    services.add_parser("collector", help="the OpenTelemetry Collector (tests.stack.collector)")
    elastic = services.add_parser("es", help=f"a local Elasticsearch node ({', '.join(es.DISTRIBUTIONS)})")
    actions = elastic.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start a node in the background and print OPENREPLAY_ES_* lines")
    up.add_argument("--port", type=int, default=None, help="HTTP port on 127.0.0.1 (default: a free one)")
    up.add_argument(
        "--version", choices=list(es.DISTRIBUTIONS), default=es.ES_VERSION, help="server version (default: %(default)s)"
    )
    up.add_argument("--heap-mb", type=int, default=512, help="JVM heap in MB (default: %(default)s)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait (default: %(default)s)")
    up.set_defaults(handler=_es_up)
    down = actions.add_parser("down", help="stop the node started by `es up` and delete its data")
    down.add_argument("--timeout", type=float, default=60.0, help="seconds to SIGKILL (default: %(default)s)")
    down.set_defaults(handler=_es_down)
    actions.add_parser("status", help="say whether the node started by `es up` answers").set_defaults(
        handler=_es_status
    )
    return parser


def _fail(what: str, tip: str, code: int = EXIT_ERROR) -> int:
    print(f"ERROR: {what}\nTIP: {tip}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["collector"]:  # before argparse: the collector's own options must pass through untouched
        return _collector(args[1:])
    namespace = _parser().parse_args(args)
    try:
        return int(namespace.handler(namespace))
    except es.ElasticsearchStartError as error:
        return _fail(str(error), "read the node's log above; `es down` clears a half-started node")
    except es.StackError as error:
        return _fail(str(error), "see the message; OTEL_OPENREPLAY_CACHE moves the cache if it is broken")


if __name__ == "__main__":
    sys.exit(main())
