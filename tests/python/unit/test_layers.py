"""The layers stay layers: each package imports only those below it, and no
module import cycle exists anywhere in the product.

    shardex_cli   the `shardex` command and the demos: wires everything
    backend       the gateway          worker   the worker agent
    deploy        compile, deploy, devnet processes
    shardex       the SDK: imports nothing above it
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("shardex", "deploy", "worker", "backend", "shardex_cli")
#: What each package may import from the project (itself always).
ALLOWED = {
    "shardex": {"shardex"},
    "deploy": {"shardex"},
    "worker": {"shardex"},
    "backend": {"shardex"},
    "shardex_cli": {"shardex", "deploy", "worker", "backend"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Project modules this file imports, anywhere in it (function-local imports too)."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from a.b import c": the module a.b.c when c is one (the graph resolves
            # that), else a.b. The package's own __init__ is not counted: Python runs
            # it for every submodule import, re-exporting packages included.
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # "from a.b import c" names a.b.c when c is a module, else a.b.
        graph[name] = {n if n in modules else n.rpartition(".")[0] for n in _imports(path)} - {name, ""}
        graph[name] &= set(modules)
    return graph


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = [f"{module} imports {target}" for module, targets in _graph().items() for target in sorted(targets)
             if (a := module.split(".")[0]) != (b := target.split(".")[0]) and b not in ALLOWED[a]]
    assert wrong == []


def test_no_module_import_cycles() -> None:
    graph = _graph()
    # Tarjan's strongly connected components; a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == [], cycles
