"""`xception.models` imports one way: no module reaches back, at import time or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import xception.models

ROOT = Path(xception.models.__file__).parent


def module_name(path: Path) -> str:
    parts = ["xception", "models", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The `xception.models` modules `path` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def test_models_package_has_no_import_cycle():
    paths = sorted(ROOT.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, known) - {module_name(p)} for p in paths}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            assert state.get(target) != "open", "import cycle: " + " -> ".join([*trail, node, target])
            if target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_torchvision_conversion_lives_in_the_weights_package():
    assert not (ROOT / "weights_torchvision.py").exists()
    assert (ROOT / "weights" / "torchvision_inception_v3.py").exists()
