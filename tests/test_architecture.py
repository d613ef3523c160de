"""The package's imports run one way: no module-level import cycles anywhere, and no module
imports from a layer above its own (the layers below, lowest first). The one exception is a
display hook (``_repr_html_``, ``_repr_png_``, ``__repr__``), which may draw itself with
``render``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS = [  # a module may import its own layer and the ones above it in this list
    ["netscope", "netscope.errors", "netscope.perf", "netscope.lazy", "netscope.files"],
    ["netscope.data"],
    ["netscope.multitask"],
    ["netscope.vision.core"],
    ["netscope.vision.models"],
    ["netscope.vision.methods"],
    ["netscope.vision.features"],
    ["netscope.vision.metrics"],
    ["netscope.vision.evaluation", "netscope.vision.report", "netscope.vision.datasets"],
    ["netscope.vision.units", "netscope.vision.concepts"],
    ["netscope.vision.live"],
    ["netscope.vision"],
    ["netscope.render"],
    ["netscope.cli", "netscope.__main__"],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.joinpath("netscope").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def layer(module: str) -> int:
    best = max(((len(p), i) for i, names in enumerate(LAYERS) for p in names
                if module == p or module.startswith(p + ".")))
    return best[1]


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool, str]]:
    """(imported netscope module, line, at module level?, enclosing function) per import."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) \
                else function
            targets: list[str] = []
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                targets = [f"{child.module}.{a.name}" if f"{child.module}.{a.name}" in known
                           else child.module for a in child.names]
            elif isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            for t in targets:
                if t == "netscope" or t.startswith("netscope."):
                    found.append((t, child.lineno, function is None, function or ""))
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_level_import_cycles():
    known = modules()
    graph = {name: {t for t, _, top, _ in imports(path, known) if top and t != name}
             for name, path in known.items()}
    for name in list(graph):
        graph[name] = {t for t in graph[name] if t in known}
    assert cycles(graph) == []


def test_no_module_imports_from_a_layer_above_it():
    known = modules()
    upward = [f"{name} (layer {layer(name)}) imports {t} (layer {layer(t)}) at line {line}"
              for name, path in known.items()
              for t, line, _, function in imports(path, known)
              if layer(t) > layer(name)
              and not (function.startswith(("_repr_", "__repr__"))
                       and t.startswith("netscope.render"))]
    assert upward == []


def test_no_public_name_is_shadowed_by_a_submodule():
    """``from netscope.vision import explain`` must give the function whatever was imported
    before: a submodule of the same name would replace it once imported."""
    import importlib

    for package in ("netscope.vision", "netscope.vision.methods", "netscope.multitask"):
        exports = importlib.import_module(package)._EXPORTS
        folder = SRC.joinpath(*package.split("."))
        submodules = {p.stem for p in folder.glob("*.py")} | \
            {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
        assert not set(exports) & submodules, package
        for name, where in exports.items():
            assert hasattr(importlib.import_module(f"{package}.{where}"), name), name
