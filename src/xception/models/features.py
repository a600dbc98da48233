"""A registered network as a backbone, in timm's terms: `features_only=True` with `out_indices`.

`FeatureExtractor` wraps a trunk (any model with `forward_intermediates` and `feature_info`, the
head dropped) and returns the selected feature maps; its `feature_info` is a `FeatureInfo`, which
answers `channels()`, `reduction()` and `module_name()` as timm's does, so code written for timm
backbones (segmentation_models_pytorch, detectron-style necks) reads it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureInfo(list):
    """The selected entries of a model's `feature_info` (dicts of num_chs, reduction, module)."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]


def resolve_out_indices(out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """`out_indices` as non-negative positions into `count` feature maps (None: all of them).

    Negative indices count from the end, as in timm; ValueError for any outside the range.
    """
    if out_indices is None:
        return tuple(range(count))
    resolved = []
    for index in out_indices:
        if not -count <= index < count:
            raise ValueError(f"out_indices {tuple(out_indices)}: this model has {count} feature maps (0..{count - 1})")
        resolved.append(index % count)
    return tuple(resolved)


class FeatureExtractor(nn.Module):
    """(N, in_channels, H, W) -> [(N, channels()[i], H / reduction()[i] - ish, ...) for each index]."""

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None) -> None:
        super().__init__()
        self.out_indices = resolve_out_indices(out_indices, len(model.feature_info))
        self.model = model
        self.feature_info = FeatureInfo(model.feature_info[i] for i in self.out_indices)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.model.forward_intermediates(x)
        return [features[i] for i in self.out_indices]
