"""Fold every BatchNorm into the convolution that feeds it, for inference.

In eval mode BatchNorm is a per-channel affine map, y = scale * (z - mean) + beta with
scale = gamma / sqrt(var + eps), so a convolution followed by it is one convolution with weights
W * scale (per output channel) and bias beta - mean * scale. Xception has 40 such pairs (two stem
convolutions, 34 separable convolutions, 4 shortcuts); folding removes 40 passes over activation
maps per image. The outputs equal the unfused model's up to float rounding.

Pairs are found by the names the models share with Keras and torchvision: a `BatchNorm2d` child
named `bn`, `bn{k}` follows its sibling `conv`, `conv{k}` or `sepconv{k}`. For a
`SeparableConv2d` the BatchNorm folds into whichever of its two convolutions runs last.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from xception.models.layers import SeparableConv2d


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with each BatchNorm folded into its convolution.

    The folded BatchNorms become `nn.Identity` (their state_dict keys disappear, so the result is
    for inference and export only); `model` itself is left untouched. Same input and output
    shapes as `model`.
    """
    fused = copy.deepcopy(model).eval()
    pairs = 0
    for parent in fused.modules():
        children = dict(parent.named_children())
        for name, bn in children.items():
            if not (isinstance(bn, nn.BatchNorm2d) and name.startswith("bn")):
                continue
            suffix = name[len("bn") :]
            source = children.get(f"conv{suffix}") or children.get(f"sepconv{suffix}")
            conv = _last_convolution(source)
            if conv is None:
                continue
            _fold(conv, bn)
            setattr(parent, name, nn.Identity())
            pairs += 1
    fused.folded_batchnorms = pairs
    return fused


def _last_convolution(module: nn.Module | None) -> nn.Conv2d | None:
    if isinstance(module, nn.Conv2d):
        return module
    if isinstance(module, SeparableConv2d):
        return module.pointwise if module.order == "depthwise_first" else module.depthwise
    return None


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"{conv} feeds {bn.num_features} BatchNorm channels, not {conv.out_channels}")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight.mul_(scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
