"""torch.hub.load from a clone of this repository (source="local": no network)."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from xception.models.weights import save_weights

REPOSITORY = Path(__file__).resolve().parent.parent


def test_hubconf_offers_xception_and_inception_v3():
    tree = ast.parse((REPOSITORY / "hubconf.py").read_text())
    entries = sorted(node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"))
    assert entries == ["inception_v3", "xception"]


def test_torch_hub_load_local_builds_the_model():
    model = torch.hub.load(str(REPOSITORY), "xception", source="local", weights=None)
    assert model.model_name == "xception"
    assert sum(p.numel() for p in model.parameters()) == 22_855_952  # Table 3
    fifty = torch.hub.load(str(REPOSITORY), "xception", source="local", weights=None, num_classes=50)
    assert fifty.classifier.out_features == 50


def test_torch_hub_load_local_loads_weights(tmp_path):
    source = torch.hub.load(str(REPOSITORY), "xception", source="local", num_classes=10, width=0.25, middle_repeats=1)
    path = save_weights(source, tmp_path / "narrow.safetensors")
    loaded = torch.hub.load(str(REPOSITORY), "xception", source="local", weights=str(path), num_classes=10,
                            width=0.25, middle_repeats=1)
    expected = source.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.state_dict().items())
