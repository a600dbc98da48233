"""`fuse_for_inference`: folded BatchNorms give the unfused model's outputs (eval mode)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xception.models import create_model
from xception.models.fuse import fuse_for_inference


def _randomize_batchnorms(model: nn.Module) -> None:
    """Non-trivial statistics and affine parameters, so that folding them is actually tested."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                n = bn.num_features
                bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                bn.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                bn.bias.copy_(torch.randn(n, generator=generator) * 0.2)


def _assert_fused_matches(model: nn.Module, size: int) -> nn.Module:
    torch.manual_seed(0)
    _randomize_batchnorms(model)
    model.eval()
    x = torch.randn(2, 3, size, size)
    fused = fuse_for_inference(model)
    with torch.no_grad():
        expected, got = model(x), fused(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    return fused


def test_fuse_for_inference_xception_folds_all_40_batchnorms_and_keeps_outputs():
    model = create_model("xception", num_classes=10)
    fused = _assert_fused_matches(model, 71)
    # 2 stem convolutions + 34 separable convolutions + 4 shortcut convolutions (Figure 5).
    assert fused.folded_batchnorms == 40


@pytest.mark.parametrize(
    "overrides", [dict(order="pointwise_first"), dict(segments=4), dict(mid_activation="relu")]
)
def test_fuse_for_inference_spectrum_variants_keep_outputs(overrides):
    _assert_fused_matches(create_model("xception_small", num_classes=10, **overrides), 32)


def test_fuse_for_inference_inception_v3_keeps_outputs():
    _assert_fused_matches(create_model("inception_v3_small", num_classes=10), 75)


def test_fuse_for_inference_leaves_the_original_untouched():
    model = create_model("xception_small", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fuse_for_inference(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
