"""timm's `legacy_xception` (and Cadene's naming of it) against this project's Xception, honestly.

The tensors map one to one, but timm's network is not Keras': BatchNorm epsilon 1e-5 and max pools
with symmetric padding 1. So the same weights give different outputs (measured and asserted here),
and patching timm's instance to epsilon 1e-3 and TensorFlow "same" pooling makes them agree.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xception import create_model

timm = pytest.importorskip("timm")

NUM_CLASSES = 50
SIZE = 150  # the pools see 72, 36, 18, 9: even sizes, where symmetric and TF padding differ


class TFSameMaxPool(nn.Module):
    """3x3 stride-2 max pool with TensorFlow's "same" padding, from its definition (smaller half first)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
            total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).norm() / reference.double().norm())


@pytest.fixture(scope="module")
def timm_xception() -> nn.Module:
    """timm legacy_xception with random weights, random BN affine and statistics from a calibration batch."""
    torch.manual_seed(0)
    model = timm.create_model("legacy_xception", pretrained=False, num_classes=NUM_CLASSES)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.5, 0.5)
            module.momentum = 1.0  # one training-mode pass sets the running statistics to the batch's
    nn.init.normal_(model.fc.bias, std=0.1)
    with torch.no_grad():
        model.train()(torch.rand(2, 3, SIZE, SIZE) * 2 - 1)
    return model.eval()


@pytest.fixture(scope="module")
def timm_file(timm_xception, tmp_path_factory):
    path = tmp_path_factory.mktemp("timm") / "legacy_xception.pth"
    torch.save(timm_xception.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1


def as_keras_numerics(model: nn.Module, *, eps: bool = True, pools: bool = True) -> nn.Module:
    """Patch a timm legacy_xception instance in place: BN epsilon 1e-3, TF "same" max pools."""
    for module in model.modules():
        if eps and isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
        if pools and isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                if isinstance(child, nn.MaxPool2d):
                    setattr(module, name, TFSameMaxPool())
    return model


def test_timm_weights_load_but_outputs_differ_from_timm(timm_xception, timm_file, batch):
    ours = create_model("xception", num_classes=NUM_CLASSES, weights=timm_file).eval()
    with torch.no_grad():
        error = relative_error(ours(batch), timm_xception(batch))
    print(f"timm legacy_xception as is vs ours, {SIZE} px: relative error {error:.2e}")
    assert error > 1e-2  # epsilon 1e-5 vs 1e-3 and shifted pooling windows: not the same network


@pytest.mark.parametrize("patch", ["eps", "pools"])
def test_timm_patched_in_one_respect_still_differs(patch, timm_xception, timm_file, batch):
    patched = as_keras_numerics(copy.deepcopy(timm_xception), eps=patch == "eps", pools=patch == "pools")
    ours = create_model("xception", num_classes=NUM_CLASSES, weights=timm_file).eval()
    with torch.no_grad():
        error = relative_error(ours(batch), patched(batch))
    print(f"timm legacy_xception with only its {patch} patched vs ours, {SIZE} px: relative error {error:.2e}")
    assert error > 1e-3


def test_timm_patched_to_keras_numerics_matches_ours(timm_xception, timm_file, batch):
    patched = as_keras_numerics(copy.deepcopy(timm_xception))
    ours = create_model("xception", num_classes=NUM_CLASSES, weights=timm_file).eval()
    with torch.no_grad():
        error = relative_error(ours(batch), patched(batch))
    print(f"timm legacy_xception with eps 1e-3 and TF-same pools vs ours, {SIZE} px: relative error {error:.2e}")
    assert error < 1e-5


def test_timm_cadene_names_safetensors_load_the_same_tensors(timm_xception, tmp_path):
    from safetensors.torch import save_file

    cadene = {k.replace("fc.", "last_linear.") if k.startswith("fc.") else k: v for k, v in timm_xception.state_dict().items()}
    path = tmp_path / "cadene.safetensors"
    save_file({k: v.contiguous() for k, v in cadene.items()}, str(path))
    ours = create_model("xception", num_classes=NUM_CLASSES, weights=path)
    assert torch.equal(ours.classifier.weight, timm_xception.fc.weight)
    assert torch.equal(ours.exit_flow.block14.main.sepconv2.pointwise.weight, timm_xception.conv4.pointwise.weight)
    assert torch.equal(ours.entry_flow.block2.shortcut.bn.running_var, timm_xception.block1.skipbn.running_var)
    assert torch.equal(ours.exit_flow.block13.main.bn2.weight, timm_xception.block12.rep[5].weight)


def test_timm_weights_into_wrong_head_fail_naming_the_tensor(timm_file):
    with pytest.raises(ValueError, match=r"'fc.weight' has shape \(50, 2048\).*num_classes=50"):
        create_model("xception", num_classes=10, weights=timm_file)
