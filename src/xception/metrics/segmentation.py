"""Semantic segmentation metrics: a confusion matrix of pixel counts (which adds up over batches and
processes), and the mean intersection over union (PASCAL VOC's and DeepLab's mIoU) from it.

IoU of class c = TP / (TP + FP + FN); the mean is over the classes that occur in the targets or
the predictions (a class absent from both has no IoU), as torchmetrics' `MeanIoU` does. Pixels
labelled `ignore_index` (the segmentation task passes `xception.data.config.IGNORE_INDEX`, 255, PASCAL
VOC's void) count nowhere: not in the confusion matrix (nor in the loss,
`xception.tasks.loss.PixelCrossEntropy`), whatever the model predicts there (torchmetrics'
`JaccardIndex(ignore_index=255)`). Pure functions of tensors: nothing of `xception.data` here.
"""

from __future__ import annotations

import torch


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int, *,
                     ignore_index: int | None = None) -> torch.Tensor:
    """int64 (num_classes, num_classes): [true class, predicted class] pixel counts.

    predictions, targets: int64 tensors of the same shape with values in 0..num_classes - 1;
    targets may also hold `ignore_index` (as torchmetrics' argument: None counts every pixel), and
    those pixels are not counted.
    """
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in shape")
    targets, predictions = targets.reshape(-1), predictions.reshape(-1)
    if ignore_index is not None:
        kept = targets != ignore_index
        targets, predictions = targets[kept], predictions[kept]
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        unlabelled = f" or {ignore_index} (not labelled)" if ignore_index is not None else ""
        raise ValueError(f"targets must be class indices in [0, {num_classes}){unlabelled}, "
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
