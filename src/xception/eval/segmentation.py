"""Semantic segmentation evaluation: the confusion matrix (`xception.metrics.segmentation`) summed
over every pixel of every process, and the mean IoU from it; pixels labelled `IGNORE_INDEX` count
neither there nor in the loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from xception.data.config import IGNORE_INDEX
from xception.distributed import all_reduce_sum
from xception.metrics.segmentation import confusion_matrix, mean_iou, per_class_iou


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
