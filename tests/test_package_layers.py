"""The package's imports run one way, at import time and inside functions alike: no cycle anywhere
in `xception`, and no layer reaches up to one built on it.

Imports inside functions count: they keep a cycle from failing at import time, but the modules
still depend on each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xception

ROOT = Path(xception.__file__).parent
# The layers, from the bottom up. A model is usable without data, tasks, training, evaluation,
# deployment or the command line; data is prepared without any of them; metrics are pure functions
# of tensors. The tasks (classification, segmentation: loss, evaluation, prediction) sit on those,
# and whatever trains, evaluates, deploys, explains, serves, measures or parses builds on the tasks.
LOWER_LAYERS = ("models", "data", "metrics")
TASK_LAYER = "tasks"
UPPER_LAYERS = ("train", "eval", "deploy", "inference", "explain", "serve", "bench", "experiments", "cli")


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


def upward_imports(graph: dict[str, set[str]], layer: str, above: tuple[str, ...]) -> list[str]:
    """"module -> target" for each import of a module of `layer` from a layer in `above`."""
    upper = tuple(f"xception.{name}" for name in above)
    return sorted(f"{module} -> {target}" for module, targets in graph.items()
                  if module == f"xception.{layer}" or module.startswith(f"xception.{layer}.")
                  for target in targets if target in upper or target.startswith(tuple(f"{u}." for u in upper)))


def test_upward_imports_finds_an_import_from_above_and_none_from_below_or_a_lookalike():
    graph = {"xception.tasks.a": {"xception.models.b", "xception.train.fit"}, "xception.models.b": set(),
             "xception.tasks_old": {"xception.train.fit"}, "xception.tasks.c": {"xception.training"}}
    assert upward_imports(graph, "tasks", ("train",)) == ["xception.tasks.a -> xception.train.fit"]
    assert upward_imports(graph, "models", ("tasks", "train")) == []


def test_find_cycle_finds_a_cycle_hidden_in_a_function_and_none_in_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", [None, "models", "deploy", "tasks"], ids=["xception", "models", "deploy", "tasks"])
def test_package_has_no_import_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("lower", LOWER_LAYERS)
def test_lower_layer_imports_neither_the_tasks_nor_an_upper_layer(lower):
    reaching_up = upward_imports(import_graph(), lower, (TASK_LAYER, *UPPER_LAYERS))
    assert not reaching_up, "imports from a higher layer: " + "; ".join(reaching_up)


def test_tasks_import_no_upper_layer():
    reaching_up = upward_imports(import_graph(), TASK_LAYER, UPPER_LAYERS)
    assert not reaching_up, "imports from a higher layer: " + "; ".join(reaching_up)


def test_every_package_is_in_a_layer():
    # A new package must be placed, or nothing would stop it from importing anything.
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages == {*LOWER_LAYERS, TASK_LAYER, *UPPER_LAYERS}


def test_deploy_backends_sit_at_the_bottom():
    # The runtime tables, the availability check, the OpenVINO Core and the three basic engines
    # need nothing of deployment above them (export, quantization, engine building, the choice).
    # onnxruntime's int8 probe (which the availability check asks) sits below them, on nothing of deploy.
    graph = import_graph("deploy")
    assert graph["xception.deploy.onnxruntime_int8"] == set()
    assert graph["xception.deploy.runtime_names"] == set()  # the names the command line's parser reads
    assert graph["xception.deploy.runtimes"] == {"xception.deploy.onnxruntime_int8", "xception.deploy.runtime_names"}
    assert graph["xception.deploy.engines"] == {"xception.deploy.runtimes"}


def test_torchvision_conversion_lives_in_the_weights_package():
    assert not (ROOT / "models" / "weights_torchvision.py").exists()
    assert (ROOT / "models" / "weights" / "torchvision_inception_v3.py").exists()


# The upper packages in layers of their own, from the bottom up: training and deployment stand on
# the tasks alone; the inference session on deployment; evaluation and explanations on the session;
# serving, benchmarks and experiments above those; the command line on everything.
UPPER_ORDER = (("train", "deploy"), ("inference",), ("eval", "explain"), ("serve", "bench", "experiments"), ("cli",))


def test_upper_packages_import_only_the_layers_below_them():
    assert {name for layer in UPPER_ORDER for name in layer} == set(UPPER_LAYERS)
    graph = import_graph()
    for level, layer in enumerate(UPPER_ORDER):
        not_below = tuple(name for upper in UPPER_ORDER[level:] for name in upper)
        for package in layer:
            reaching = [edge for edge in upward_imports(graph, package, not_below)
                        if not edge.split(" -> ")[1].startswith(f"xception.{package}")]
            assert reaching == [], f"{package} imports from its own layer or above: {reaching}"


def test_lower_layers_do_not_import_each_other_upward():
    # models, then data, then metrics, each on nothing above it: metrics are pure functions of
    # tensors and import nothing of data (nor of models); data imports nothing of metrics.
    graph = import_graph()
    assert upward_imports(graph, "metrics", ("data", "models")) == []
    assert upward_imports(graph, "data", ("metrics",)) == []
    assert upward_imports(graph, "models", ("data", "metrics")) == []


def test_only_the_inference_session_chooses_runtimes_and_builds_engines_for_weights():
    # predict, eval, serve and explain run through `InferenceSession`: none of them chooses a
    # runtime or builds an engine itself (the calibration times engines of its own; the bench builds
    # engines of random-weight models to compare runtimes).
    callers = {name: set() for name in ("choose_runtime(", "build_engine(", "load_timings(")}
    for path in ROOT.rglob("*.py"):
        for line in path.read_text().splitlines():
            code = line.strip()
            for name, found in callers.items():
                if name in code and not code.startswith(("def ", "#")):
                    found.add(module_name(path))
    assert callers["choose_runtime("] <= {"xception.inference.session", "xception.deploy.choice"}
    assert callers["build_engine("] <= {"xception.inference.session", "xception.deploy.build", "xception.deploy.timings",
                                        "xception.bench.suite"}
    assert callers["load_timings("] <= {"xception.inference.session", "xception.deploy.timings"}
    assert "xception.inference.session" in callers["choose_runtime("] & callers["build_engine("]
