"""models/ layout rules (issue 18), checked on the source text, without importing anything:

* no import circle between modules of models/ (a module that imports ``models.x.y`` depends on
  ``models.x.y``; ``from models.x import y`` on ``models.x.y`` when that is a module);
* no ``tensorflow`` import (keras + keras.ops only), no import of ``tasks``/``pipelines``;
* every file under 400 lines.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
MAX_LINES = 400


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(MODELS.rglob("*.py"))}


def imported_modules(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Every module name ``path`` imports (absolute or relative), anywhere in the file
    (function-level imports count: a lazy import is still a dependency)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # ``from models.decoding import beam_search`` imports a module, not a name.
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sources()
    known = set(files)
    return {name: {m for m in imported_modules(name, path, known) if m in known and m != name}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative three-colour DFS)."""
    state, parent = {}, {}
    for root in sorted(graph):
        if root in state:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        state[root] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
            elif state.get(child) == "open":
                cycle = [child]
                while node != child:
                    cycle.append(node)
                    node = parent[node]
                return [child, *reversed(cycle[1:]), child]
            elif child not in state:
                state[child], parent[child] = "open", node
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_find_cycle_reports_a_circle_and_accepts_a_tree():
    # The checker itself: the old layout's circle (cells <-> stacked through __getattr__).
    circle = {"cells": {"stacked"}, "stacked": {"cells", "peephole"}, "peephole": {"cells"}}
    cycle = find_cycle(circle)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) <= set(circle)
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_and_from_package_imports_are_edges(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("from . import cells\nfrom ..decoding import sampling\n"
                    "def f():\n    from models.layers.crf import CRF\n")
    known = {"models.layers.cells", "models.decoding.sampling", "models.layers.crf"}
    assert imported_modules("models.layers.x", path, known) >= known


def test_models_has_no_import_cycle():
    graph = import_graph()
    assert "models.layers.cells" in graph and "models.decoding.beam_search" in graph
    assert "models.layers.stacked" in graph["models.tagger"]  # the graph does see imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in models/: " + " -> ".join(cycle)


def test_layers_and_decoding_do_not_import_task_builders():
    builders = {n for n in sources() if n.count(".") == 1}
    for name, deps in import_graph().items():
        if name.startswith(("models.layers", "models.decoding")):
            assert not deps & builders, f"{name} imports task builders {sorted(deps & builders)}"


@pytest.mark.parametrize("path", sorted(MODELS.rglob("*.py")), ids=lambda p: module_name(p))
def test_module_rules(path):
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines < MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (limit {MAX_LINES})"
    for module in imported_modules(module_name(path), path, set()):
        top = module.split(".")[0]
        assert top != "tensorflow", f"{path.relative_to(REPO)} imports {module}: keras only"
        assert top not in ("tasks", "pipelines"), \
            f"{path.relative_to(REPO)} imports {module}: models/ must not depend on it"
