"""The package's modules import each other without a cycle.

Read from the source with ``ast``: every ``import`` statement of every module counts, at module level,
under ``if TYPE_CHECKING:`` and inside functions alike (a lazy import is the same cycle, met later).
A package is not counted as imported by its own submodules (Python runs ``otel_openreplay/__init__``
first, but no module of ours asks for a name from a package that imports it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import otel_openreplay

PACKAGE = "otel_openreplay"
ROOT = Path(otel_openreplay.__file__).parent


def package_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` (its source at ``path``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else _known(base, modules))
    found.discard("")
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    modules = package_modules(root, package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle of ``graph`` as a path that ends where it starts (one per strongly connected group)."""
    found: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):
        loop = _cycle_from(start, graph, [], done)
        if loop is not None:
            found.append(loop)
            done.update(loop)
    return found


def _cycle_from(node: str, graph: Mapping[str, Iterable[str]], path: list[str], done: set[str]) -> list[str] | None:
    """Depth first from ``node`` (``path`` leads to it): the first cycle met, or None (then ``node`` is done)."""
    if node in path:
        return [*path[path.index(node) :], node]
    if node in done:
        return None
    path.append(node)
    for child in sorted(graph.get(node, ())):
        loop = _cycle_from(child, graph, path, done)
        if loop is not None:
            return loop
    path.pop()
    done.add(node)
    return None


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def _known(dotted: str, modules: Mapping[str, Path]) -> str:
    """The longest prefix of ``dotted`` that is one of the package's modules, or ``""``."""
    parts = dotted.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return ""


class TestImportCycles:
    def test_the_package_has_no_cycle(self) -> None:
        """No module of otel_openreplay imports, directly or through others, a module that imports it."""
        assert cycles(import_graph()) == []

    def test_the_graph_sees_the_imports(self) -> None:
        """The walk finds imports at module level, under TYPE_CHECKING and inside functions."""
        graph = import_graph()
        assert "otel_openreplay.generations" in graph["otel_openreplay.doctor"]  # module level
        assert "otel_openreplay.collector_files" in graph["otel_openreplay.cli.collector"]  # in a function
        assert "otel_openreplay.exporter" in graph["otel_openreplay"]  # under TYPE_CHECKING
        assert "otel_openreplay.celery_logging" in graph["otel_openreplay.wiring"]  # `from package import module`

    def test_a_cycle_is_found(self, tmp_path: Path) -> None:
        """Two modules importing each other (one lazily, one relatively) are reported as a cycle."""
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "a.py").write_text("from pkg.b import thing\n")
        (package / "b.py").write_text("def thing():\n    from . import a\n")
        (package / "c.py").write_text("import pkg.a\n")
        assert cycles(import_graph(package, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]
