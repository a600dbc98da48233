"""Semantic segmentation metrics and evaluation: a confusion matrix summed over every pixel of
every process, and the mean intersection over union (PASCAL VOC's and DeepLab's mIoU) from it.

IoU of class c = TP / (TP + FP + FN); the mean is over the classes that occur in the targets or
the predictions (a class absent from both has no IoU), as torchmetrics' `MeanIoU` does. Pixels
labelled `IGNORE_INDEX` (255, PASCAL VOC's void) count nowhere: not in the confusion matrix, not in
the loss, whatever the model predicts there (torchmetrics' `JaccardIndex(ignore_index=255)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from xception.data.config import IGNORE_INDEX
from xception.distributed import all_reduce_sum


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """int64 (num_classes, num_classes): [true class, predicted class] pixel counts.

    predictions, targets: int64 tensors of the same shape with values in 0..num_classes - 1;
    targets may also hold `ignore_index`, and those pixels are not counted.
    """
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
    kept = targets.reshape(-1) != ignore_index
    targets, predictions = targets.reshape(-1)[kept], predictions.reshape(-1)[kept]
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must be class indices in [0, {num_classes}) or {ignore_index} (not labelled), "
                         f"got {int(targets.min())}..{int(targets.max())}")
    pairs = targets * num_classes + predictions
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_iou(confusion: torch.Tensor) -> torch.Tensor:
    """float64 (num_classes,) IoU per class; NaN for a class in neither targets nor predictions."""
    confusion = confusion.double()
    true_positive = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    return torch.where(union > 0, true_positive / union.clamp_min(1), torch.nan)


def mean_iou(confusion: torch.Tensor) -> float:
    """The mean of `per_class_iou` over the classes present, in [0, 1]."""
    return float(per_class_iou(confusion).nanmean())


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    *,
    device: torch.device,
    num_classes: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """`examples`, `loss` (mean cross-entropy of the labelled pixels), `miou`, `pixel_accuracy` and `per_class_iou`
    (a list, NaN where undefined) of `model` (a module, or an `xception.deploy.engines.Engine`) over `loader`'s shards, combined over all processes.

    Items: images (N, C, H, W) in [-1, 1], masks int64 (N, H, W) (`IGNORE_INDEX` where not labelled);
    the model gives (N, K, H, W) logits.
    """
    if isinstance(model, nn.Module):
        model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    labelled = torch.zeros((), dtype=torch.long, device=device)
    for images, masks in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, masks, reduction="sum", ignore_index=IGNORE_INDEX).double()
        labelled += (masks != IGNORE_INDEX).sum()
        confusion += confusion_matrix(logits.argmax(1), masks, num_classes)
        count += images.shape[0]
    confusion, loss_sum = all_reduce_sum(confusion), all_reduce_sum(loss_sum)
    count, labelled = all_reduce_sum(count), all_reduce_sum(labelled)
    examples = int(count)
    return {
        "examples": examples,
        "loss": float(loss_sum) / max(int(labelled), 1),
        "miou": mean_iou(confusion),
        "pixel_accuracy": float(confusion.diagonal().sum()) / max(int(confusion.sum()), 1),
        "per_class_iou": per_class_iou(confusion).tolist(),
    }
