"""Classification, the paper's task: softmax or sigmoid cross-entropy (`xception.tasks.loss`), and
the evaluation of a model on a data set, on one process or many, counting every example exactly once.

Single-label data: top-1 and top-5 accuracy (section 4.4, ImageNet) from correct-prediction counts
summed over processes. Multi-label data: the scores of all processes are gathered, then mean
average precision, the paper's MAP@100 (section 4.3, JFT/FastEval14k; defined in
`xception.metrics.classification.map_at_k` and docs/metrics.md) and per-class AP. Top-1 (MAP for
multi-label data) picks the best checkpoint; `xception predict` prints the top-k classes of each image.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from xception.data.bad_images import CheckedLoader
from xception.data.datasets import Datasets
from xception.description import WeightsDescription
from xception.distributed import all_gather_rows, all_reduce_sum
from xception.metrics.binary import binary_metrics
from xception.metrics.classification import average_precision, map_at_k, mean_average_precision, topk_correct
from xception.runtime import autocast
from xception.tasks.loss import ClassificationLoss, LossRecipe
from xception.tasks.predict import predict


class ClassificationTask:
    name = "classification"

    def check_data(self, datasets: Datasets) -> None:
        """Every classification source fits."""

    def loss(self, recipe: LossRecipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        return ClassificationLoss(recipe.loss, label_smoothing=recipe.label_smoothing, weight=weight)

    def evaluate(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                 device: torch.device, num_classes: int, multilabel: bool = False,
                 class_weights: torch.Tensor | None = None, **options: Any) -> dict[str, Any]:
        """`evaluate`'s metrics (the number of classes is the logits' width); `options`:
        autocast_dtype, channels_last, progress, keep_scores."""
        return evaluate(model, loader, device=device, multilabel=multilabel, class_weights=class_weights, **options)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        return "top1" if "top1" in metrics else "map"

    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """Nothing beyond the curves and weights that every run writes."""

    def write_predictions(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          paths: list[str], description: WeightsDescription, *, top_k: int, out: str | None,
                          file: TextIO | None = None) -> list[int]:
        """Print each path and its `top_k` classes with their probabilities, most probable first;
        writes no file (`out` is for the masks of segmentation). Returns each image's first class."""
        class_names = list(description.class_names)
        rows = predict(model, images, class_names=class_names, top_k=top_k, multilabel=description.multilabel)
        for path, row in zip(paths, rows, strict=True):
            print(path, file=file)
            for name, probability in row:
                print(f"  {probability:7.4f}  {name}", file=file)
        return [class_names.index(row[0][0]) for row in rows]


@torch.no_grad()
def evaluate(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader,
    *,
    device: torch.device,
    multilabel: bool,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    class_weights: torch.Tensor | None = None,
    ks: tuple[int, ...] = (1, 5),
    progress: bool = False,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Metrics of `model` (a module, switched to eval mode, or an `xception.deploy.engines.Engine`) over this process's shard of `loader`, combined
    over all processes. Images (N, C, H, W) in [-1, 1]; targets class indices (N,) or multi-hot
    (N, num_classes).

    Returns `examples` (the total count, every example once), `loss` (mean cross-entropy, softmax
    or sigmoid) and either `top1`, `top5` (fractions in [0, 1]) or `map`, `map_at_100`,
    `per_class_ap` (a list; NaN for classes without positives). Two classes add the detection
    metrics of class 1's probability (`xception.metrics.binary`): `roc_auc`, `eer`, `average_precision`;
    `keep_scores` adds `scores` and `labels`, those probabilities and targets in loader order (one
    process). A loader from `build_loader` that
    skips unreadable images (`--bad-images skip`) adds `bad_images`, their number, all left out
    of `examples` and the metrics. `progress` draws a bar over this process's batches on stderr
    when it is a terminal.
    """
    if isinstance(model, nn.Module):
        model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    correct = torch.zeros(len(ks), dtype=torch.long, device=device)
    all_scores, all_targets = [], []
    # A bar only on a terminal: into a log file tqdm writes one endless line of carriage returns.
    bar = progress and sys.stderr.isatty()
    for images, targets in tqdm(loader, desc="evaluating", unit="batch", file=sys.stderr, disable=not bar):
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        with autocast(device.type, autocast_dtype):
            logits = model(images)
        logits = logits.float().to(device)  # onnxruntime and OpenVINO engines return CPU logits
        count += images.shape[0]
        if multilabel:
            loss_sum += F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum").double() / logits.shape[1]
            all_scores.append(logits.sigmoid().cpu())
            all_targets.append(targets.float().cpu())
        else:
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            correct += topk_correct(logits, targets, ks)
            if logits.shape[1] == 2:
                all_scores.append(logits.softmax(1)[:, 1].cpu())
                all_targets.append(targets.cpu())
    total = int(all_reduce_sum(count))
    if total == 0:
        raise ValueError("the evaluation set is empty")
    result: dict[str, Any] = {"examples": total, "loss": float(all_reduce_sum(loss_sum)) / total}
    if isinstance(loader, CheckedLoader) and loader.record.policy == "skip":
        result["bad_images"] = len(loader.record.gather())
    if not multilabel:
        correct = all_reduce_sum(correct)
        for k, c in zip(ks, correct.tolist(), strict=True):
            result[f"top{k}"] = c / total
            result[f"correct{k}"] = int(c)
        if all_scores:
            scores = all_gather_rows(torch.cat(all_scores)[:, None].to(device))[:, 0].cpu()
            labels = all_gather_rows(torch.cat(all_targets)[:, None].to(device))[:, 0].cpu()
            if torch.isfinite(scores).all():  # a diverged model's NaN logits rank nothing; its loss says so
                result.update({k: v for k, v in binary_metrics(scores, labels).items()
                               if k in ("roc_auc", "eer", "average_precision")})
            else:
                result.update(roc_auc=math.nan, eer=math.nan, average_precision=math.nan)
            if keep_scores:
                result["scores"], result["labels"] = scores, labels
        return result
    num_classes = all_scores[0].shape[1] if all_scores else 0
    scores = all_gather_rows(torch.cat(all_scores).to(device) if all_scores else torch.zeros(0, num_classes, device=device)).cpu()
    targets = all_gather_rows(torch.cat(all_targets).to(device) if all_targets else torch.zeros(0, num_classes, device=device)).cpu()
    result["map"] = float(mean_average_precision(scores, targets))
    result["map_at_100"] = float(map_at_k(scores, targets, k=100, class_weights=class_weights))
    result["per_class_ap"] = [float(x) for x in average_precision(scores, targets)]
    return result
