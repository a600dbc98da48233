"""The two losses of the paper: softmax cross-entropy (ImageNet, single-label) and per-class
sigmoid cross-entropy (JFT, multi-label; section 4.3 "logistic regression" over 17,000 classes);
and the per-pixel softmax cross-entropy of segmentation, which leaves the ignore label out."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from xception.data.config import IGNORE_INDEX


class LossRecipe(Protocol):
    """What a task's loss reads of a training recipe (`xception.train.recipes.Recipe`)."""

    @property
    def name(self) -> str: ...

    @property
    def loss(self) -> str: ...  # "softmax" or "sigmoid"

    @property
    def label_smoothing(self) -> float: ...


class ClassificationLoss(nn.Module):
    """`kind` "softmax": logits (N, C) and class indices (N,) or multi-hot (N, C) targets (the
    latter normalised to a distribution). "sigmoid": mean over classes and images of the binary
    cross-entropy; class-index targets are turned into one-hot rows. Label smoothing spreads
    `label_smoothing` of the target mass uniformly (softmax) or towards 0.5 (sigmoid).

    `weight`: optional (C,) per-class weights (`xception.data.balance.loss_class_weights`).
    Softmax: PyTorch's weighted cross-entropy, sum_i w_{y_i} l_i / sum_i w_{y_i} for class indices
    (a weighted mean over the batch). Sigmoid: each class's binary cross-entropy times its weight.
    """

    def __init__(self, kind: str, *, label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown loss {kind!r}; valid: softmax, sigmoid")
        self.kind, self.label_smoothing = kind, label_smoothing
        self.weight = weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device, logits.dtype)
        if self.kind == "softmax":
            if targets.ndim == 2:
                targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1.0)
            return F.cross_entropy(logits, targets, weight=weight, label_smoothing=self.label_smoothing)
        if targets.ndim == 1:
            targets = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)


class PixelCrossEntropy(nn.Module):
    """Softmax cross-entropy of logits (N, K, H, W) against masks int64 (N, H, W), averaged over the
    pixels whose label is not `IGNORE_INDEX` (255, PASCAL VOC's void: borders, unlabelled regions).
    A batch with no labelled pixel has loss 0 (and zero gradients), not NaN."""

    def __init__(self, *, label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.label_smoothing, self.weight = label_smoothing, weight

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device, logits.dtype)
        if not (masks != IGNORE_INDEX).any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits, masks, weight=weight, ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)
