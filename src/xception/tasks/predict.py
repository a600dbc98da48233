"""Inference: the top-k classes (names and probabilities) of a batch of prepared images, or, for a
segmentation model, the class of every pixel.

The model comes from `xception.models.trained.open_weights`, the preparation from
`xception.data.prediction.prediction_transform`, both rebuilt from the weight file's metadata."""

from __future__ import annotations

from collections.abc import Callable

import torch


@torch.no_grad()
def predict(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *, class_names: list[str], top_k: int,
            multilabel: bool = False) -> list[list[tuple[str, float]]]:
    """For each of the (N, C, H, W) `images` in [-1, 1], run through `model` (a module or an
    `xception.deploy.engines.Engine`), the `top_k` (class name, probability)
    pairs, most probable first. Probabilities: softmax (single-label) or per-class sigmoid."""
    logits = model(images).float()
    probabilities = logits.sigmoid() if multilabel else logits.softmax(dim=1)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [[(class_names[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
            for row_p, row_i in zip(values, indices, strict=True)]


@torch.no_grad()
def predict_masks(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) int64: the most probable class of each pixel of the (N, C, H, W) `images`, for a
    segmentation model (a module or an `Engine`) whose logits (N, classes, H, W) match the input size."""
    return model(images).float().argmax(dim=1)
