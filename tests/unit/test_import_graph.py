"""The import graph of farm, coordinator and workers has no cycle, lazy imports in functions included."""

from __future__ import annotations

import ast
from collections.abc import Container
from pathlib import Path

from support.helpers import ROOT

PACKAGES = ("farm", "coordinator", "workers")


def _modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, module: str, is_package: bool, modules: Container[str]) -> set[str]:
    """The modules of `modules` a module imports anywhere (top level, functions, classes):
    `from pkg import mod` is an edge to pkg.mod, `from pkg.mod import name` and `import pkg.mod`
    to pkg.mod (the parent packages Python imports on the way are not counted). Relative imports
    are resolved; `if TYPE_CHECKING:` blocks are left out (they never run)."""
    names: set[str] = set()

    def deepest(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(deepest(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in modules else deepest(base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    names.discard("")
    names.discard(module)
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of the three packages it imports."""
    return {module: _imported(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py", modules)
            for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Per strongly connected set of modules, a cycle through it (a path back to its start),
    then the set's other members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[list[str], list[str]]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.add(w)
                if w == v:
                    break
            if len(members) > 1:
                path = _path_through(graph, members, min(members))
                found.append((path, sorted(members - set(path))))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _path_through(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A shortest path start → … → start inside one strongly connected set (breadth first)."""
    paths = {w: [start, w] for w in graph[start] if w in members}
    frontier = list(paths)
    while start not in paths:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w in members and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return paths[start]


def test_no_module_of_farm_coordinator_or_workers_imports_itself_through_others() -> None:
    found = cycles(import_graph(_modules()))
    lines = [" -> ".join(path) + (f" (its circle also takes in {', '.join(others)})" if others else "")
             for path, others in found]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_cycle_finder_sees_a_lazy_import_in_a_function(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text("def f():\n    from pkg.high import g\n    return g\n")
    (tmp_path / "pkg" / "high.py").write_text("from . import low\n\ndef g():\n    return low\n")
    (tmp_path / "pkg" / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                              "    from pkg.high import g\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.low": tmp_path / "pkg" / "low.py",
               "pkg.high": tmp_path / "pkg" / "high.py", "pkg.typed": tmp_path / "pkg" / "typed.py"}
    graph = import_graph(modules)
    assert graph["pkg.high"] == {"pkg.low"} and graph["pkg.low"] == {"pkg.high"} and graph["pkg.typed"] == set()
    assert cycles(graph) == [(["pkg.high", "pkg.low", "pkg.high"], [])]


def test_the_memory_store_does_not_import_the_redis_store() -> None:
    """The stub store stands without Redis: nothing of coordinator.state or its Redis half."""
    graph = import_graph(_modules())
    seen, todo = set(), ["coordinator.memory_store"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    assert not seen & {"coordinator.state", "coordinator.redis_outcomes"}
