"""The two losses of the paper: softmax cross-entropy (ImageNet, single-label) and per-class
sigmoid cross-entropy (JFT, multi-label; section 4.3 "logistic regression" over 17,000 classes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationLoss(nn.Module):
    """`kind` "softmax": logits (N, C) and class indices (N,) or multi-hot (N, C) targets (the
    latter normalised to a distribution). "sigmoid": mean over classes and images of the binary
    cross-entropy; class-index targets are turned into one-hot rows. Label smoothing spreads
    `label_smoothing` of the target mass uniformly (softmax) or towards 0.5 (sigmoid)."""

    def __init__(self, kind: str, *, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(f"unknown loss {kind!r}; valid: softmax, sigmoid")
        self.kind, self.label_smoothing = kind, label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.kind == "softmax":
            if targets.ndim == 2:
                targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1.0)
            return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        if targets.ndim == 1:
            targets = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits, targets)
