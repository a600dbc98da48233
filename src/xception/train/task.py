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
from torch import nn
from torch.utils.data import DataLoader

from xception.data.datasets import Datasets
from xception.eval.evaluate import evaluate
from xception.train.loss import ClassificationLoss, PixelCrossEntropy
from xception.train.recipes import Recipe

TaskName = Literal["classification", "segmentation"]
MASK_FIGURE = "masks.png"
# The model of `xception train --task segmentation`, and a segmentation model's recipe and data source
# unless told otherwise (the 10-minute CPU preset).
SEGMENTATION_DEFAULTS = {"model": "deeplabv3plus_small", "recipe": "mosaic_segmentation", "source": "mosaic_masks"}


class ClassificationTask:
    name = "classification"

    def check_data(self, datasets: Datasets) -> None:
        """Every classification source fits."""

    def loss(self, recipe: Recipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        return ClassificationLoss(recipe.loss, label_smoothing=recipe.label_smoothing, weight=weight)

    def evaluate(self, model: nn.Module, loader: DataLoader, datasets: Datasets, **runtime: Any) -> dict[str, Any]:
        return evaluate(model, loader, multilabel=datasets.multilabel, class_weights=datasets.class_weights, **runtime)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        return "top1" if "top1" in metrics else "map"

    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """Nothing beyond the curves and weights that every run writes."""


class SegmentationTask:
    name = "segmentation"
    figure_images = 4

    def check_data(self, datasets: Datasets) -> None:
        image, mask = datasets.val[0]
        if not (isinstance(mask, torch.Tensor) and mask.shape == image.shape[-2:]):
            raise ValueError("a segmentation model needs per-pixel labels: use the data source mosaic_masks or "
                             "segfolder, your images and masks (--dataset mosaic_masks|segfolder, data.source)")

    def loss(self, recipe: Recipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        if recipe.loss != "softmax":
            raise ValueError(f"segmentation trains a per-pixel softmax; recipe {recipe.name!r} uses {recipe.loss}")
        return PixelCrossEntropy(label_smoothing=recipe.label_smoothing, weight=weight)

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
                         title="first validation images: input, true and predicted masks")


def build_task(model: str) -> ClassificationTask | SegmentationTask:
    """The task of a registered model, as its registry entry says."""
    from xception.models.registry import get_entry

    return {"classification": ClassificationTask, "segmentation": SegmentationTask}[get_entry(model).task]()


def resolve_train_values(values: dict[str, Any], *, task: TaskName | None = None) -> dict[str, Any]:
    """Complete the fields of a TrainConfig given as plain data (a config file, the command line, an
    experiment), the one place where a task's presets apply: the model (`task` "segmentation" without
    a model: deeplabv3plus_small), then, for a segmentation model, the segmentation recipe and data
    source unless given, and the model's default input size. `task` must agree with the model. A
    "task" key (configs and checkpoints written before the task came from the model) must too, and
    is dropped. Returns a new dict."""
    from xception.models.registry import get_entry

    values = {**values, "data": dict(values.get("data") or {})}
    task = task or values.get("task")
    if task == "segmentation":
        values.setdefault("model", SEGMENTATION_DEFAULTS["model"])
    entry = get_entry(values.setdefault("model", "xception"))
    if task not in (None, entry.task):
        example = "deeplabv3plus_small" if task == "segmentation" else "xception"
        raise ValueError(f"task {task} needs a {task} model, e.g. --model {example}; {entry.name} is a "
                         f"{entry.task} model")
    values.pop("task", None)
    if entry.task == "segmentation":
        values.setdefault("recipe", SEGMENTATION_DEFAULTS["recipe"])
        values["data"].setdefault("source", SEGMENTATION_DEFAULTS["source"])
    values["data"].setdefault("image_size", entry.input_size)
    return values
