"""Xception's in-place ReLUs (a speed-up) leave outputs and gradients exactly as out-of-place ones."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xception.models import create_model


def _out_of_place(model: nn.Module) -> nn.Module:
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return plain


def test_xception_uses_in_place_relus_only_after_batchnorm():
    model = create_model("xception", num_classes=10)
    in_place = {name for name, m in model.named_modules() if isinstance(m, nn.ReLU) and m.inplace}
    # 35 ReLUs in all; the 11 that open blocks 3..13 read the block input: 2 stem + 22 in place.
    assert len(in_place) == 24
    assert not any(name.endswith("main.act1") for name in in_place)


@pytest.mark.parametrize("name, size", [("xception_small", 32), ("xception_no_residual", 71)])
def test_xception_in_place_relus_keep_training_gradients(name, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).train()
    plain = _out_of_place(model)
    x = torch.randn(2, 3, size, size)
    y = torch.tensor([1, 7])
    for m in (model, plain):
        F.cross_entropy(m(x), y).backward()
    for (key, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=key)
    # BatchNorm running statistics, updated in the same forward pass, agree too.
    for (key, b), c in zip(model.named_buffers(), plain.buffers(), strict=True):
        torch.testing.assert_close(b, c, rtol=0, atol=0, msg=key)


def test_xception_in_place_relus_keep_inference_outputs():
    torch.manual_seed(0)
    model = create_model("xception", num_classes=10).eval()
    plain = _out_of_place(model)
    x = torch.randn(2, 3, 71, 71)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
