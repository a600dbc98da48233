"""Binary classification scored as detection tasks score it (deepfake detection, FaceForensics++,
DeepfakeBench): ROC-AUC, equal error rate and average precision, per image and per group of
images (the frames of one video). Pure functions of tensors; docs/metrics.md states each definition.

Scores: one float per image, higher = more likely the positive class (a probability from
`positive_scores`, or any monotone function of it: the metrics only rank the scores, except
`accuracy`, which thresholds probabilities at 0.5). Targets: 0 or 1 per image. Tied scores are one
threshold: they enter the ROC curve together, as a diagonal step, as scikit-learn's `roc_curve`
treats them, so no order among equal scores is assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xception.metrics.classification import average_precision


def check_binary(scores: torch.Tensor, targets: torch.Tensor) -> None:
    if scores.ndim != 1 or targets.shape != scores.shape:
        raise ValueError(f"expected scores (N,) and targets (N,), got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity; rank finite scores (e.g. probabilities)")
    if not ((targets == 0) | (targets == 1)).all():
        raise ValueError("binary targets must be 0 or 1")


def positive_scores(logits: torch.Tensor, positive_class: int = 1) -> torch.Tensor:
    """float32 (N,) probability of `positive_class`: softmax of logits (N, 2) (or (N, C), one class
    against the rest), or the sigmoid of logits (N, 1) or (N,) (then `positive_class` must be 1)."""
    if logits.ndim == 2 and logits.shape[1] >= 2:
        if not 0 <= positive_class < logits.shape[1]:
            raise ValueError(f"positive_class {positive_class} is not one of the {logits.shape[1]} classes")
        return logits.float().softmax(1)[:, positive_class]
    if positive_class != 1:
        raise ValueError("a single logit per image scores class 1; positive_class must be 1")
    return logits.float().reshape(len(logits)).sigmoid()


def roc_curve(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fpr, tpr, thresholds), float64 (K + 1,) each: the false and true positive rates of calling
    positive every image with score >= t, for each of the K distinct scores t in descending order,
    after the point (0, 0) at t = +inf. Rates are NaN when the targets hold no negative (fpr) or no
    positive (tpr). scikit-learn's `roc_curve(..., drop_intermediate=False)`."""
    check_binary(scores, targets)
    ordered, order = scores.double().sort(descending=True, stable=True)
    labels = targets.double()[order]
    run_end = torch.ones_like(ordered, dtype=torch.bool)
    run_end[:-1] = ordered[:-1] != ordered[1:]  # the last image of each run of equal scores
    true_positives, false_positives = labels.cumsum(0)[run_end], (1 - labels).cumsum(0)[run_end]
    zero = torch.zeros(1, dtype=torch.float64, device=scores.device)
    fpr = torch.cat([zero, false_positives]) / (1 - labels).sum()
    tpr = torch.cat([zero, true_positives]) / labels.sum()
    thresholds = torch.cat([zero + torch.inf, ordered[run_end]])
    return fpr, tpr, thresholds


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve (trapezoids; ties count 1/2), in [0, 1]: the probability that a
    random positive outscores a random negative. NaN when the targets hold only one class."""
    fpr, tpr, _ = roc_curve(scores, targets)
    return float(torch.trapezoid(tpr, fpr))


def equal_error_rate(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """The error rate where the false positive rate equals the false negative rate (1 - tpr), in
    [0, 1]: where the ROC curve, its points joined by straight lines, crosses fpr + tpr = 1 (the
    common `brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)` on scikit-learn's curve).
    DeepfakeBench reports instead the fpr of the ROC point nearest to the crossing, which differs
    by at most the step of the curve there. NaN when the targets hold only one class."""
    fpr, tpr, _ = roc_curve(scores, targets)
    if fpr.isnan().any() or tpr.isnan().any():
        return float("nan")
    gap = fpr + tpr - 1  # -1 at (0, 0), +1 at (1, 1), nondecreasing along the curve
    after = int(torch.nonzero(gap >= 0)[0])
    if gap[after] == 0:
        return float(fpr[after])
    before = after - 1
    fraction = -gap[before] / (gap[after] - gap[before])
    return float(fpr[before] + fraction * (fpr[after] - fpr[before]))


def binary_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Average precision of the positive class (scikit-learn's `average_precision_score`; tied
    scores are one threshold). NaN when there is no positive."""
    check_binary(scores, targets)
    return float(average_precision(scores[:, None], targets[:, None])[0])


def binary_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float | int]:
    """{"count", "positives", "roc_auc", "eer", "average_precision", "accuracy"} of `scores` (N,)
    against `targets` (N,); accuracy calls positive a score >= 0.5 (scores must be probabilities
    for it to mean anything)."""
    check_binary(scores, targets)
    return {
        "count": len(scores),
        "positives": int(targets.sum()),
        "roc_auc": roc_auc(scores, targets),
        "eer": equal_error_rate(scores, targets),
        "average_precision": binary_average_precision(scores, targets),
        "accuracy": float(((scores >= 0.5).long() == targets.long()).double().mean()) if len(scores) else float("nan"),
    }


def group_means(scores: torch.Tensor, targets: torch.Tensor,
                groups: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(scores (G,), targets (G,), names): the mean score of each group's images and its target,
    for the G groups in sorted order of their names. The mean of per-frame probabilities is
    DeepfakeBench's video-level score (and FaceForensics++'s video evaluation). Every image of a
    group must have the same target; a ValueError names a group that mixes them."""
    check_binary(scores, targets)
    if len(groups) != len(scores):
        raise ValueError(f"{len(groups)} group names for {len(scores)} scores")
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    member = torch.tensor([index[g] for g in groups], dtype=torch.long, device=scores.device)
    counts = torch.bincount(member, minlength=len(names)).double()
    means = torch.zeros(len(names), dtype=torch.float64, device=scores.device).index_add_(0, member, scores.double())
    positives = torch.zeros_like(means).index_add_(0, member, targets.double())
    mixed = (positives > 0) & (positives < counts)
    if mixed.any():
        name = names[int(torch.nonzero(mixed)[0])]
        raise ValueError(f"group {name!r} holds images of both classes; a group (e.g. a video) has one label")
    return means / counts, (positives > 0).long(), names
