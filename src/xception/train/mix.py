"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of training batches, with torchvision's
transforms.v2 (`MixUp`, `CutMix`): class-index targets become mixed one-hot rows, which the softmax
loss takes as distributions. Random draws come from torch's global generator, which checkpoints carry,
so a resumed run mixes as an uninterrupted one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from xception.train.recipes import Recipe

Batch = tuple[torch.Tensor, torch.Tensor]


def build_mix(recipe: Recipe, *, num_classes: int, task: str, multilabel: bool) -> Callable[..., Batch] | None:
    """(images (N, C, H, W), class indices (N,)) -> (mixed images, soft targets (N, num_classes)), one
    of the recipe's mixes per call when both are on; None when the recipe mixes nothing."""
    mixes = []
    if recipe.mixup_alpha > 0:
        mixes.append(v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_classes))
    if recipe.cutmix_alpha > 0:
        mixes.append(v2.CutMix(alpha=recipe.cutmix_alpha, num_classes=num_classes))
    if not mixes:
        return None
    if task != "classification" or multilabel or recipe.loss != "softmax":
        raise ValueError(f"recipe {recipe.name!r}: mixup and cutmix need single-label classification with a "
                         "softmax loss; set recipe.mixup_alpha=0 and recipe.cutmix_alpha=0")
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
