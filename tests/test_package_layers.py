"""The package's imports run one way, at import time and inside functions alike: no cycle within
`xception.models` or `xception.deploy`, and the lower layers never reach up.

Imports inside functions count: they keep a cycle from failing at import time, but the modules
still depend on each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xception

ROOT = Path(xception.__file__).parent
# Layers that must not know what is built on them: a model is usable without data, training,
# evaluation, deployment or the command line; data is prepared without any of them.
LOWER_LAYERS = ("models", "data")
UPPER_LAYERS = ("train", "eval", "deploy", "cli")


def module_name(path: Path) -> str:
    parts = ["xception", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The `xception` modules `path` imports anywhere (top level or inside functions): for
    `from a.b import c`, a.b.c where that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known}
    return found


def import_graph(package: str | None = None) -> dict[str, set[str]]:
    """module -> the modules of the same `package` (all of `xception` for None) it imports."""
    paths = sorted(ROOT.rglob("*.py"))
    known = {module_name(p) for p in paths}
    prefix = f"xception.{package}" if package else "xception"
    inside = {name for name in known if name == prefix or name.startswith(prefix + ".")}
    return {module_name(p): imports_of(p, inside) - {module_name(p)} for p in paths if module_name(p) in inside}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as the trail of modules that closes it, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*trail, node, target]
            if target not in state and (cycle := visit(target, [*trail, node])):
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_hidden_in_a_function_and_none_in_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", ["models", "deploy"])
def test_package_has_no_import_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("lower", LOWER_LAYERS)
def test_lower_layer_imports_no_upper_layer(lower):
    upper = tuple(f"xception.{name}" for name in UPPER_LAYERS)
    reaching_up = sorted(f"{module} -> {target}" for module, targets in import_graph().items()
                         if module.startswith(f"xception.{lower}") for target in targets
                         if target.startswith(upper))
    assert not reaching_up, "imports from a higher layer: " + "; ".join(reaching_up)


def test_deploy_backends_sit_at_the_bottom():
    # The runtime tables, the availability check, the OpenVINO Core and the three basic engines
    # need nothing of deployment above them (export, quantization, engine building, the choice).
    # onnxruntime's int8 probe (which the availability check asks) sits below them, on nothing of deploy.
    graph = import_graph("deploy")
    assert graph["xception.deploy.onnxruntime_int8"] == set()
    assert graph["xception.deploy.runtimes"] == {"xception.deploy.onnxruntime_int8"}
    assert graph["xception.deploy.engines"] == {"xception.deploy.runtimes"}


def test_torchvision_conversion_lives_in_the_weights_package():
    assert not (ROOT / "models" / "weights_torchvision.py").exists()
    assert (ROOT / "models" / "weights" / "torchvision_inception_v3.py").exists()
