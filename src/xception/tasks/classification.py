"""Classification, the paper's task: softmax or sigmoid cross-entropy (`xception.tasks.loss`), and
the evaluation of a model on a data set, on one process or many, counting every example exactly once.

Single-label data: top-1 and top-5 accuracy (section 4.4, ImageNet) from correct-prediction counts
summed over processes. Multi-label data: the scores of all processes are gathered, then mean
average precision, the paper's MAP@100 (section 4.3, JFT/FastEval14k; defined in
`xception.metrics.classification.map_at_k` and docs/metrics.md) and per-class AP. Top-1 (MAP for
multi-label data; ROC-AUC for two classes) picks the best checkpoint; `xception predict` prints the top-k
classes of each image and, for weights with a decision policy (`xception.tasks.decision`), the decision.
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
from xception.description import Decision, WeightsDescription
from xception.distributed import all_gather_rows, all_reduce_sum
from xception.metrics.binary import binary_metrics
from xception.metrics.calibration import CalibrationBins, calibration_bins
from xception.metrics.classification import average_precision, map_at_k, mean_average_precision, topk_correct
from xception.metrics.thresholds import decision_metrics, threshold_metrics
from xception.runtime import autocast
from xception.tasks.decision import Decided, decide, decision_text
from xception.tasks.loss import ClassificationLoss, LossRecipe
from xception.tasks.predict import predict
from xception.tasks.tta import TTA, averaged_logits, tta_views


class ClassificationTask:
    name = "classification"

    def check_data(self, datasets: Datasets) -> None:
        """Every classification source fits."""

    def loss(self, recipe: LossRecipe, *, weight: torch.Tensor | None = None) -> nn.Module:
        return ClassificationLoss(recipe.loss, label_smoothing=recipe.label_smoothing, weight=weight)

    def evaluate(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, *,
                 device: torch.device, num_classes: int, multilabel: bool = False,
                 class_weights: torch.Tensor | None = None, **options: Any) -> dict[str, Any]:
        """`evaluate`'s metrics, with top-5 only where there are more than 5 classes (top-5 of two
        classes is always 1); `options`: autocast_dtype, channels_last, progress, keep_scores,
        keep_logits, decision."""
        ks = (1, 5) if num_classes > 5 else (1,)
        return evaluate(model, loader, device=device, multilabel=multilabel, class_weights=class_weights, ks=ks,
                        **options)

    def key_metric(self, metrics: dict[str, Any]) -> str:
        """Two classes: ROC-AUC, as detection benchmarks rank (DeepfakeBench, FaceForensics++): top-1
        of a two-class model stays at the share of the larger class until its head moves past 0.5,
        while the ranking it learns shows from the start. NaN (a split of one class) falls back to
        top-1. Else top-1, or MAP for multi-label data."""
        if not math.isnan(metrics.get("roc_auc", math.nan)):
            return "roc_auc"
        return "top1" if "top1" in metrics else "map"

    def finish(self, run_dir: Path, model: nn.Module, datasets: Datasets, device: torch.device) -> None:
        """Nothing beyond the curves and weights that every run writes."""

    def write_predictions(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                          paths: list[str], description: WeightsDescription, *, top_k: int, out: str | None,
                          file: TextIO | None = None) -> list[int]:
        """Print each path and its `top_k` classes with their probabilities, most probable first,
        after the decision where the weights carry a decision policy (`model` must then return the
        calibrated logits, as `InferenceSession.calibrated_logits` does); writes no file (`out` is
        for the masks of segmentation). Returns each image's decided class (else its first)."""
        class_names = list(description.class_names)
        with torch.no_grad():
            logits = model(images).float()
        # One forward pass for the top-k rows and the decision: both read these logits.
        rows = predict(lambda _: logits, images, class_names=class_names, top_k=top_k,
                       multilabel=description.multilabel)
        firsts = [class_names.index(row[0][0]) for row in rows]
        decided: list[Decided | None] = [None] * len(rows)
        if description.decision is not None:
            probabilities = logits.sigmoid() if description.multilabel else logits.softmax(1)
            decided = decide(probabilities, description.decision, class_names=class_names,
                             multilabel=description.multilabel)
        for path, row, decision in zip(paths, rows, decided, strict=True):
            print(path, file=file)
            if decision is not None:
                print(f"  decision: {decision_text(decision, class_names)}", file=file)
            for name, probability in row:
                print(f"  {probability:7.4f}  {name}", file=file)
        return [d.classes[0] if d is not None and d.classes else first for d, first in zip(decided, firsts, strict=True)]


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
    keep_logits: bool = False,
    decision: Decision | None = None,
    tta: TTA = "none",
) -> dict[str, Any]:
    """Metrics of `model` (a module, switched to eval mode, or an `xception.deploy.engines.Engine`) over this process's shard of `loader`, combined
    over all processes. Images (N, C, H, W) in [-1, 1]; targets class indices (N,) or multi-hot
    (N, num_classes).

    Returns `examples` (the total count, every example once), `loss` (mean cross-entropy, softmax
    or sigmoid), `ece` (`xception.metrics.calibration`, 15 bins), `confidence` (the mean confidence
    of the predictions the ECE bins: above the accuracy, over-confident) and either `top1`, `top5`
    (`ks`; fractions in [0, 1]) or `map`, `map_at_100`, `per_class_ap` (a list; NaN for classes
    without positives). Two classes add the detection
    metrics of class 1's probability (`xception.metrics.binary`): `roc_auc`, `eer`, `average_precision`,
    and `accuracy`, `precision`, `recall`, `f1` of deciding class 1 at `threshold` (the decision's,
    else 0.5); multi-label weights with a threshold add the same four, micro-averaged over every
    (image, class) pair decided at the decision's thresholds (per class where it has them). A
    `decision` (the weights' policy) adds `temperature`, `ece_calibrated`, `confidence_calibrated`
    and `nll_calibrated` (after the temperature; `loss` is the NLL before it), and the probabilities
    above are the calibrated ones. `calibration_bins` holds the ECE's bins ("raw", and
    "calibrated" with a decision: `CalibrationBins`) for a reliability diagram.
    `keep_scores` adds `scores` and `labels`, a two-class model's probabilities of class 1 and targets
    in loader order (one process); `keep_logits` adds `logits` (N, C) and `targets`, gathered from
    every process. `tta` ("flip", "5crop", "flip+5crop") averages each image's probabilities over its
    views (`xception.tasks.tta`; the logits kept are then those of the mean probabilities). A loader
    from `build_loader` that skips unreadable images (`--bad-images skip`) adds `bad_images`, their
    number, all left out of `examples` and the metrics. `progress` draws a bar over this process's
    batches on stderr when it is a terminal.
    """
    if isinstance(model, nn.Module):
        model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    calibrated_loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    correct = torch.zeros(len(ks), dtype=torch.long, device=device)
    bins = {name: CalibrationBins.empty(device=device) for name in ("raw", "calibrated")[:1 if decision is None else 2]}
    all_scores, all_targets, all_logits = [], [], []
    # A bar only on a terminal: into a log file tqdm writes one endless line of carriage returns.
    bar = progress and sys.stderr.isatty()
    for images, targets in tqdm(loader, desc="evaluating", unit="batch", file=sys.stderr, disable=not bar):
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        targets = targets.to(device, non_blocking=True)
        views = []
        for view in tta_views(images, tta):
            with autocast(device.type, autocast_dtype):
                views.append(model(view).float().to(device))  # onnxruntime and OpenVINO engines return CPU logits
        # One view: the logits, and those / T. More: the logits of the views' mean probabilities,
        # before and after the temperature (`xception.tasks.tta.averaged_logits`).
        logits = averaged_logits(views, multilabel=multilabel)
        calibrated = (averaged_logits(views, multilabel=multilabel, temperature=decision.temperature)
                      if decision is not None else logits)
        count += images.shape[0]
        if keep_logits:
            all_logits.append(logits.cpu())
        if multilabel:
            loss_sum += F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum").double() / logits.shape[1]
            calibrated_loss_sum += F.binary_cross_entropy_with_logits(
                calibrated, targets.float(), reduction="sum").double() / logits.shape[1]
            all_scores.append(calibrated.sigmoid().cpu())
            all_targets.append(targets.float().cpu())
            _add_bins(bins, "raw", logits.sigmoid(), targets, multilabel=True)
            if decision is not None:
                _add_bins(bins, "calibrated", calibrated.sigmoid(), targets, multilabel=True)
        else:
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
            calibrated_loss_sum += F.cross_entropy(calibrated, targets, reduction="sum").double()
            correct += topk_correct(logits, targets, ks)
            _add_bins(bins, "raw", logits.softmax(1), targets, multilabel=False)
            if decision is not None:
                _add_bins(bins, "calibrated", calibrated.softmax(1), targets, multilabel=False)
            if logits.shape[1] == 2:
                all_scores.append(calibrated.softmax(1)[:, 1].cpu())
            if logits.shape[1] == 2 or keep_logits:
                all_targets.append(targets.cpu())
    total = int(all_reduce_sum(count))
    if total == 0:
        raise ValueError("the evaluation set is empty")
    result: dict[str, Any] = {"examples": total, "loss": float(all_reduce_sum(loss_sum)) / total}
    if decision is not None:
        result.update(temperature=decision.temperature, nll_calibrated=float(all_reduce_sum(calibrated_loss_sum)) / total)
    if isinstance(loader, CheckedLoader) and loader.record.policy == "skip":
        result["bad_images"] = len(loader.record.gather())
    if keep_logits:
        result["logits"] = all_gather_rows(torch.cat(all_logits).to(device)).cpu()
    bins = {name: CalibrationBins.of_stacked(all_reduce_sum(b.stacked()).cpu()) for name, b in bins.items()}
    result["ece"] = bins["raw"].expected_calibration_error()
    result["confidence"] = bins["raw"].overall_confidence()
    if "calibrated" in bins:
        result["ece_calibrated"] = bins["calibrated"].expected_calibration_error()
        result["confidence_calibrated"] = bins["calibrated"].overall_confidence()
    result["calibration_bins"] = bins
    if not multilabel:
        correct = all_reduce_sum(correct)
        for k, c in zip(ks, correct.tolist(), strict=True):
            result[f"top{k}"] = c / total
            result[f"correct{k}"] = int(c)
        if keep_logits:
            result["targets"] = all_gather_rows(torch.cat(all_targets)[:, None].to(device))[:, 0].cpu()
        if all_scores:
            scores = all_gather_rows(torch.cat(all_scores)[:, None].to(device))[:, 0].cpu()
            labels = all_gather_rows(torch.cat(all_targets)[:, None].to(device))[:, 0].cpu()
            if torch.isfinite(scores).all():  # a diverged model's NaN logits rank nothing; its loss says so
                result.update({k: v for k, v in binary_metrics(scores, labels).items()
                               if k in ("roc_auc", "eer", "average_precision")})
                threshold = decision.threshold if decision is not None and decision.threshold is not None else 0.5
                result.update(threshold=threshold, **threshold_metrics(scores, labels, threshold))
            else:
                result.update(roc_auc=math.nan, eer=math.nan, average_precision=math.nan)
            if keep_scores:
                result["scores"], result["labels"] = scores, labels
        return result
    num_classes = all_scores[0].shape[1] if all_scores else 0
    scores = all_gather_rows(torch.cat(all_scores).to(device) if all_scores else torch.zeros(0, num_classes, device=device)).cpu()
    targets = all_gather_rows(torch.cat(all_targets).to(device) if all_targets else torch.zeros(0, num_classes, device=device)).cpu()
    if keep_logits:
        result["targets"] = targets
    if decision is not None and decision.threshold is not None:  # the decisions at the stored thresholds
        thresholds = torch.tensor(decision.thresholds(num_classes), dtype=scores.dtype)
        result.update(threshold=decision.threshold,
                      **decision_metrics((scores >= thresholds).reshape(-1), targets.reshape(-1)))
    result["map"] = float(mean_average_precision(scores, targets))
    result["map_at_100"] = float(map_at_k(scores, targets, k=100, class_weights=class_weights))
    result["per_class_ap"] = [float(x) for x in average_precision(scores, targets)]
    return result


def _add_bins(bins: dict[str, CalibrationBins], name: str, probabilities: torch.Tensor, targets: torch.Tensor, *,
              multilabel: bool) -> None:
    batch = calibration_bins(probabilities, targets, multilabel=multilabel)
    bins[name] = bins[name] + batch
