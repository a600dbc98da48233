"""`xception --help` and `xception COMMAND --help` answer at once: building the parser imports no
torch, no runtime and no model, while the package still offers `create_model` and the others by name.

Each command imports what it needs inside its `run`; the parser reads only torch-free constants
(`xception.data.config`, `xception.experiments.registry`, `xception.deploy.quantize_methods`, ...).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import xception
from xception.cli import COMMANDS

# The heavy dependencies (seconds of import between them): PyTorch and what stands on it, the
# inference runtimes and quantizers, the explanation library and the server.
HEAVY = ("torch", "torchvision", "timm", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "torchao",
         "pytorch_grad_cam", "keras", "tensorflow", "fastapi", "uvicorn")

# Runs in a fresh interpreter: imports the command line, adds each command's parser (its module and
# `add_parser`, as `build_parser` does), builds the whole parser, then answers `--help` and each
# `COMMAND --help`; prints, for each step, the heavy top-level modules that step imported first.
HELP_SCRIPT = """
import argparse, contextlib, importlib, io, json, sys
heavy = set(json.loads(sys.argv[1]))
loaded = lambda: {name.split(".")[0] for name in sys.modules} & heavy
steps = {}
before = loaded()
from xception.cli import COMMANDS, build_parser, main
steps["import xception.cli"] = sorted(loaded() - before)
for name in COMMANDS:
    before = loaded()
    importlib.import_module(f"xception.cli.{name}").add_parser(argparse.ArgumentParser().add_subparsers())
    steps[f"xception.cli.{name} and its add_parser"] = sorted(loaded() - before)
before = loaded()
build_parser()
steps["build_parser()"] = sorted(loaded() - before)
for argv in (["--help"], *([name, "--help"] for name in COMMANDS)):
    before, code = loaded(), None
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code
    assert code == 0 and "usage: xception" in out.getvalue(), (argv, code)
    steps["xception " + " ".join(argv)] = sorted(loaded() - before)
print(json.dumps(steps))
"""


def test_cli_help_imports_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", HELP_SCRIPT, json.dumps(HEAVY)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert {"xception --help", *(f"xception {name} --help" for name in COMMANDS)} <= set(steps)
    imported = {step: modules for step, modules in steps.items() if modules}
    assert not imported, "heavy modules imported for the help: " + "; ".join(
        f"{step} imported {', '.join(modules)}" for step, modules in imported.items())


def test_package_offers_create_model_by_name():
    from torch import nn

    from xception import create_model
    from xception.models.xception import Xception

    model = create_model("xception", num_classes=50)
    assert isinstance(model, Xception)
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [50]
    assert "xception" in xception.list_models() and "inception_v3" in xception.list_models()
    assert xception.list_weights() and xception.create_model is create_model


@pytest.mark.parametrize("package", ["xception", "xception.data", "xception.experiments", "xception.explain"])
def test_lazy_package_resolves_every_public_name(package):
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018
