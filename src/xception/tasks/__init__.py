"""What a model is trained for and how it is measured, by task: the loss, the evaluation over a data
loader, the metric that picks the best checkpoint, what a training run leaves behind besides the
weights, and what `xception predict` writes.

The task comes from the model's registry entry (`ModelEntry.task`) and travels in every weight file
(`WeightsDescription.task`); nothing else names it. Classification (the paper's, `classification`):
softmax or sigmoid cross-entropy, top-1 or MAP, the top-k classes of an image. Segmentation
(DeepLabV3+ on per-pixel labels, `segmentation`): per-pixel softmax cross-entropy, mean IoU, a
picture of predicted masks in the run directory, a mask PNG per image.

This layer sits on models, data and metrics. Training (`xception.train`), the evaluation of weight
files (`xception.eval`), deployment and the command line build on it; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch
from torch import nn
from torch.utils.data import DataLoader

from xception.data.datasets import Datasets
from xception.description import Task as TaskName
from xception.description import WeightsDescription
from xception.models.registry import get_entry
from xception.tasks.classification import ClassificationTask
from xception.tasks.loss import LossRecipe
from xception.tasks.segmentation import SegmentationTask

__all__ = ["ClassificationTask", "LossRecipe", "SegmentationTask", "Task", "TaskName", "build_task", "get_task"]


class Task(Protocol):
    """One task: what training, `xception eval` and `xception predict` ask of it."""

    name: TaskName

    def check_data(self, datasets: Datasets) -> None:
        """Fail with a message naming the data option when `datasets` cannot train this task."""

    def loss(self, recipe: LossRecipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        """The training loss of `recipe`, with optional (num_classes,) per-class `weight`."""

    def evaluate(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                 device: torch.device, num_classes: int, multilabel: bool = False,
                 class_weights: torch.Tensor | None = None, autocast_dtype: torch.dtype | None = None,
                 channels_last: bool = False, progress: bool = False, keep_scores: bool = False) -> dict[str, Any]:
        """The metrics of `model` (a module, switched to eval mode, or an `xception.deploy.engines.Engine`)
        over this process's shard of `loader`, combined over all processes: always `examples` and
        `loss`. `keep_scores` adds a two-class classifier's per-image `scores` and `labels` (one
        process), for the grouped detection metrics of `xception eval`."""

    def key_metric(self, metrics: dict[str, Any]) -> str:
        """The metric of `evaluate`'s result that picks the best checkpoint (higher is better)."""

    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """Write what a finished training run leaves in `run_dir` besides curves and weights."""

    def write_predictions(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          paths: list[str], description: WeightsDescription, *, top_k: int, out: str | None,
                          file: TextIO | None = None) -> list[int] | None:
        """Write and print (to `file`, default stdout) what `xception predict` shows of the (N, C, H, W)
        `images` read from `paths`; returns the class each image's explanation shows, or None to
        let the explanation choose."""


_TASKS: dict[str, type[ClassificationTask] | type[SegmentationTask]] = {
    "classification": ClassificationTask, "segmentation": SegmentationTask}


def get_task(name: TaskName) -> Task:
    """The task called `name`, as a weight file records it (`WeightsDescription.task`)."""
    return _TASKS[name]()


def build_task(model: str) -> Task:
    """The task of a registered model, as its registry entry says."""
    return get_task(get_entry(model).task)
