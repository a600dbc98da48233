"""Segmentation (DeepLabV3+ on per-pixel labels): per-pixel softmax cross-entropy
(`xception.tasks.loss.PixelCrossEntropy`), evaluation by mean IoU (`xception.metrics.segmentation`)
over every pixel of every process, which also picks the best checkpoint, a picture of predicted
masks in the run directory (`masks.png`), and for `xception predict` a mask PNG per image.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from xception.data.config import IGNORE_INDEX
from xception.data.datasets import Datasets
from xception.description import WeightsDescription
from xception.distributed import all_reduce_sum
from xception.metrics.segmentation import confusion_matrix, mean_iou, per_class_iou
from xception.tasks.loss import LossRecipe, PixelCrossEntropy
from xception.tasks.mask_figure import save_mask_figure, save_mask_png
from xception.tasks.predict import predict_masks

MASK_FIGURE = "masks.png"


class SegmentationTask:
    name = "segmentation"
    figure_images = 4

    def check_data(self, datasets: Datasets) -> None:
        image, mask = datasets.val[0]
        if not (isinstance(mask, torch.Tensor) and mask.shape == image.shape[-2:]):
            raise ValueError("a segmentation model needs per-pixel labels: use the data source mosaic_masks or "
                             "segfolder, your images and masks (--dataset mosaic_masks|segfolder, data.source)")

    def loss(self, recipe: LossRecipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        if recipe.loss != "softmax":
            raise ValueError(f"segmentation trains a per-pixel softmax; recipe {recipe.name!r} uses {recipe.loss}")
        return PixelCrossEntropy(label_smoothing=recipe.label_smoothing, weight=weight)

    def evaluate(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                 device: torch.device, num_classes: int, multilabel: bool = False,
                 class_weights: torch.Tensor | None = None, keep_scores: bool = False,
                 **options: Any) -> dict[str, Any]:
        """`evaluate_segmentation`'s metrics; `options`: autocast_dtype, channels_last, progress.
        Masks have one label per pixel and every pixel counts alike: `multilabel` and `class_weights`
        (MAP@100's) must be left out, and there are no per-image scores to keep."""
        if multilabel or class_weights is not None or keep_scores:
            raise ValueError("segmentation is scored by mean IoU over the pixels: no multi-label targets, MAP "
                             "class weights or per-image scores (grouped detection metrics are for classifiers)")
        return evaluate_segmentation(model, loader, device=device, num_classes=num_classes, **options)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        return "miou"

    @torch.no_grad()
    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """`masks.png`: the first validation images, their true and predicted masks."""
        items = [datasets.val[i] for i in range(min(self.figure_images, len(datasets.val)))]
        images = torch.stack([image for image, _ in items])
        truths = torch.stack([mask for _, mask in items])
        model.eval()
        predictions = model(images.to(device)).argmax(1).cpu()
        save_mask_figure(run_dir / MASK_FIGURE, images, truths, predictions, class_names=datasets.class_names,
                         title="first validation images: input, true and predicted masks")

    def write_predictions(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          paths: list[str], description: WeightsDescription, *, top_k: int, out: str | None,
                          file: TextIO | None = None) -> None:
        """Write each image's mask as NAME.mask.png in `out` (default: beside the image; a palette PNG
        of class indices at the model's input size) and print the share of its pixels in each class
        found, largest first (every class found: `top_k` is for classifiers). Returns None: an
        explanation shows each image's most common class."""
        class_names = list(description.class_names)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
        for path, mask in zip(paths, predict_masks(model, images), strict=True):
            target = Path(out or Path(path).parent) / f"{Path(path).stem}.mask.png"
            save_mask_png(target, mask, num_classes=len(class_names))
            print(f"{path} -> {target} ({mask.shape[1]}x{mask.shape[0]})", file=file)
            shares = mask.flatten().bincount(minlength=len(class_names)) / mask.numel()
            for index in shares.argsort(descending=True).tolist():
                if shares[index] > 0:
                    print(f"  {float(shares[index]):7.4f}  {class_names[index]}", file=file)
        return None


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    *,
    device: torch.device,
    num_classes: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """`examples`, `loss` (mean cross-entropy of the labelled pixels), `miou`, `pixel_accuracy` and `per_class_iou`
    (a list, NaN where undefined) of `model` (a module, or an `xception.deploy.engines.Engine`) over `loader`'s shards, combined over all processes.

    Items: images (N, C, H, W) in [-1, 1], masks int64 (N, H, W) (`IGNORE_INDEX` where not labelled);
    the model gives (N, K, H, W) logits. `progress` draws a bar over this process's batches on stderr
    when it is a terminal.
    """
    if isinstance(model, nn.Module):
        model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    labelled = torch.zeros((), dtype=torch.long, device=device)
    # A bar only on a terminal: into a log file tqdm writes one endless line of carriage returns.
    bar = progress and sys.stderr.isatty()
    for images, masks in tqdm(loader, desc="evaluating", unit="batch", file=sys.stderr, disable=not bar):
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, masks, reduction="sum", ignore_index=IGNORE_INDEX).double()
        labelled += (masks != IGNORE_INDEX).sum()
        confusion += confusion_matrix(logits.argmax(1), masks, num_classes, ignore_index=IGNORE_INDEX)
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
