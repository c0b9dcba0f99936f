"""The search package's structure, checked over its imports (read from the source, not run).

Layers, lowest first; a module imports only from its own layer or below, and never in a cycle:

    0 errors
    1 configuration: _validate (one settings model), _settings (presets, Fidelity), _execution
    2 trial schema: _schema (every stored key, TrialRecord, Counts)
    3 study: _space, _storage, _liveness, _study
    4 training (no optuna): _train, _evaluate, _trained
      read side (never the worker): _results, _figures, _report, _dashboard, _data_out
    5 worker: _worker (takes an evaluator), _repeats
    6 services: _events, _pool, _api (the public Python API, re-exported by __init__)
    7 CLI: _views (the only module that renders), _flows, cli, __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEARCH = REPO / "search"
LAYERS = {
    "errors": 0,
    "_validate": 1, "_settings": 1, "_execution": 1,
    "_schema": 2,
    "_space": 3, "_storage": 3, "_liveness": 3, "_study": 3,
    "_train": 4, "_evaluate": 4, "_trained": 4,
    "_results": 4, "_figures": 4, "_report": 4, "_dashboard": 4, "_data_out": 4,
    "_worker": 5, "_repeats": 5,
    "_events": 6, "_pool": 6, "_api": 6,
    "_views": 7, "_flows": 7, "cli": 7, "__main__": 7,
    "__init__": 8,
}  # fmt: skip
READ_SIDE = ("_results", "_figures", "_report", "_dashboard", "_data_out")


def _imports(path: Path) -> list[tuple[str, int, str]]:
    """``(module inside mtlsearch, line, where)`` for every import of the package in ``path``;
    ``where`` is ``module``, ``function`` or ``typing`` (under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for grandchild in child.body:
                    visit(ast.Module(body=[grandchild], type_ignores=[]), "typing")
                continue
            inner = "function" if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else where
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "mtlsearch":
                parts = child.module.split(".")
                if len(parts) == 1:  # from mtlsearch import _api
                    found.extend((alias.name, child.lineno, where) for alias in child.names)
                else:
                    found.append((parts[1], child.lineno, where))
            elif isinstance(child, ast.Import):
                found.extend((a.name.split(".")[1], child.lineno, where) for a in child.names if a.name.startswith("mtlsearch."))
            visit(child, inner)

    visit(tree, "module")
    return found


def _graph() -> dict[str, list[tuple[str, int, str]]]:
    return {path.stem: [i for i in _imports(path) if i[0] in LAYERS] for path in sorted(SEARCH.glob("*.py"))}


def test_every_module_of_the_package_has_a_layer() -> None:
    assert {p.stem for p in SEARCH.glob("*.py")} == set(LAYERS)


def test_imports_go_downwards_only() -> None:
    upward = [
        f"{module} (layer {LAYERS[module]}) imports {target} (layer {LAYERS[target]}) at line {line}"
        for module, imports in _graph().items()
        for target, line, where in imports
        if where != "typing" and LAYERS[target] > LAYERS[module]
    ]
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    graph = {m: {t for t, _, where in imports if where != "typing" and t != m} for m, imports in _graph().items()}
    done: set[str] = set()
    cycles = []

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            walk(target, path + [node])
        done.add(node)

    for module in graph:
        walk(module, [])
    assert cycles == []


def test_modules_import_the_package_at_module_level() -> None:
    """Function-level imports are for heavy dependencies (torch, optuna, plotly, and the torch
    names of mtlsearch.models) that ``--help`` must not pay for, not for the package's own
    modules (``__init__`` resolves its public names lazily by design)."""
    inside = [f"{m}:{line} imports {t}" for m, imports in _graph().items() if m != "__init__" for t, line, where in imports if where == "function"]
    assert inside == []


def test_the_read_side_never_imports_the_worker() -> None:
    for module in READ_SIDE:
        assert not {t for t, _, _ in _graph()[module]} & {"_worker", "_evaluate", "_train", "_repeats", "_api"}, module


def test_only_the_views_render() -> None:
    rendering = [p.stem for p in SEARCH.glob("*.py") if "from rich" in p.read_text() or "import rich" in p.read_text()]
    assert rendering == ["_views"]


def _public() -> set[str]:
    tree = ast.parse((SEARCH / "__init__.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
    return set(ast.literal_eval(node.value))


@pytest.mark.parametrize("script", sorted((REPO / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_benchmarks_use_the_public_api_and_patch_nothing(script: Path) -> None:
    text = script.read_text()
    assert "conftest" not in text and "from tests" not in text and "import tests" not in text
    tree = ast.parse(text)
    public = _public()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtlsearch._"):
            covered = sorted(alias.name for alias in node.names if alias.name in public)
            assert not covered, f"{script.name}:{node.lineno} imports {covered} from {node.module}: the public API has them (import mtlsearch)"
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and "module" in ast.unparse(target.value):
                    pytest.fail(f"{script.name}:{node.lineno} assigns {ast.unparse(target)}: benchmarks do not patch the package")
