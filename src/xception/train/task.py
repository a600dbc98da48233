"""What a training run optimises and measures, by task: the loss, the evaluation, the metric that
picks the best checkpoint, and what the run leaves behind besides the weights.

Classification (the paper's): softmax or sigmoid cross-entropy, top-1 or MAP. Segmentation
(DeepLabV3+ on per-pixel labels): per-pixel softmax cross-entropy, mean IoU, and a picture of
predicted masks in the run directory (`masks.png`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from xception.data.datasets import Datasets
from xception.eval.evaluate import evaluate
from xception.train.loss import ClassificationLoss
from xception.train.recipes import Recipe

TaskName = Literal["classification", "segmentation"]
MASK_FIGURE = "masks.png"
# What `xception train --task segmentation` uses unless told otherwise (the 10-minute CPU preset).
SEGMENTATION_DEFAULTS = {"model": "deeplabv3plus_small", "recipe": "mosaic_segmentation", "source": "mosaic_masks"}


class ClassificationTask:
    name = "classification"

    def check_model(self, model_task: str) -> None:
        if model_task != "classification":
            raise ValueError("this model predicts masks: train it with --task segmentation")

    def check_data(self, datasets: Datasets) -> None:
        """Every classification source fits."""

    def loss(self, recipe: Recipe) -> nn.Module:
        return ClassificationLoss(recipe.loss, label_smoothing=recipe.label_smoothing)

    def evaluate(self, model: nn.Module, loader: DataLoader, datasets: Datasets, **runtime: Any) -> dict[str, Any]:
        return evaluate(model, loader, multilabel=datasets.multilabel, class_weights=datasets.class_weights, **runtime)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        return "top1" if "top1" in metrics else "map"

    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """Nothing beyond the curves and weights that every run writes."""


class PixelCrossEntropy(nn.Module):
    """logits (N, K, H, W), masks int64 (N, H, W) -> the mean per-pixel softmax cross-entropy."""

    def __init__(self, *, label_smoothing: float) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, masks, label_smoothing=self.label_smoothing)


class SegmentationTask:
    name = "segmentation"
    figure_images = 4

    def check_model(self, model_task: str) -> None:
        if model_task != "segmentation":
            raise ValueError("--task segmentation needs a segmentation model, e.g. --model deeplabv3plus_small")

    def check_data(self, datasets: Datasets) -> None:
        image, mask = datasets.val[0]
        if not (isinstance(mask, torch.Tensor) and mask.shape == image.shape[-2:]):
            raise ValueError("--task segmentation needs per-pixel labels: use --dataset mosaic_masks")

    def loss(self, recipe: Recipe) -> nn.Module:
        if recipe.loss != "softmax":
            raise ValueError(f"segmentation trains a per-pixel softmax; recipe {recipe.name!r} uses {recipe.loss}")
        return PixelCrossEntropy(label_smoothing=recipe.label_smoothing)

    def evaluate(self, model: nn.Module, loader: DataLoader, datasets: Datasets, **runtime: Any) -> dict[str, Any]:
        from xception.eval.segmentation import evaluate_segmentation

        return evaluate_segmentation(model, loader, num_classes=datasets.num_classes, **runtime)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        return "miou"

    @torch.no_grad()
    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """`masks.png`: the first validation images, their true and predicted masks."""
        from xception.eval.mask_figure import save_mask_figure

        items = [datasets.val[i] for i in range(min(self.figure_images, len(datasets.val)))]
        images = torch.stack([image for image, _ in items])
        truths = torch.stack([mask for _, mask in items])
        model.eval()
        predictions = model(images.to(device)).argmax(1).cpu()
        save_mask_figure(run_dir / MASK_FIGURE, images, truths, predictions, class_names=datasets.class_names,
                         title="validation mosaics (test-set garments): input, true and predicted masks")


def build_task(name: TaskName) -> ClassificationTask | SegmentationTask:
    tasks = {"classification": ClassificationTask, "segmentation": SegmentationTask}
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(tasks)}")
    return tasks[name]()
