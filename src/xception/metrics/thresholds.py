"""A two-class decision threshold chosen on scored images, and the metrics of deciding at it.

A score t decides: positive where score >= t. The rules (`xception.description.THRESHOLD_RULES`),
each over the points of the ROC curve (`xception.metrics.binary.roc_curve`):
- "eer": the point where the false positive rate is closest to the false negative rate (1 - tpr),
  the operating point of the equal error rate;
- "max_f1": the point of the highest F1 of the positive class;
- "fpr=X": the point of the highest true positive rate whose false positive rate is at most X;
- "tpr=X": the point of the lowest false positive rate whose true positive rate is at least X.

The threshold returned lies halfway between the lowest score the point calls positive and the
next lower score, so that it decides the scored images as the point does and leaves new images
near the boundary the same margin on either side. A rate of X can only be measured on enough
images: "fpr=X" needs at least 1 / X negatives, "tpr=X" at least 1 / (1 - X) positives (one
error must be a step no larger than the rate allowed); fewer is refused, as are scores of one class.
"""

from __future__ import annotations

import math

import torch

from xception.description import parse_threshold_rule
from xception.metrics.binary import check_binary, roc_curve


class ThresholdRuleError(ValueError):
    """The images cannot support the rule: one class only, or too few images to measure its rate."""


def choose_threshold(scores: torch.Tensor, targets: torch.Tensor, rule: str) -> float:
    """The threshold in [0, 1] that `rule` chooses on `scores` (N,) probabilities of the positive
    class against `targets` (N,) 0/1. Raises `ThresholdRuleError` where the data cannot meet it."""
    kind, rate = parse_threshold_rule(rule)
    check_binary(scores, targets)
    positives, negatives = int(targets.sum()), int((targets == 0).sum())
    if positives == 0 or negatives == 0:
        raise ThresholdRuleError(f"threshold rule {rule}: the images hold one class only ({positives} positive, "
                                 f"{negatives} negative); a threshold needs both")
    fpr, tpr, thresholds = roc_curve(scores, targets)
    if kind == "eer":
        point = int((fpr - (1 - tpr)).abs().argmin())
    elif kind == "max_f1":
        true_positives = tpr * positives
        f1 = 2 * true_positives / (true_positives + fpr * negatives + positives)
        point = int(f1.argmax())
    elif kind == "fpr":
        _require(rule, "negative", negatives, needed=math.ceil(round(1 / rate, 9)))
        point = int(torch.nonzero(fpr <= rate + 1e-12)[-1])
    else:
        _require(rule, "positive", positives, needed=math.ceil(round(1 / (1 - rate), 9)))
        point = int(torch.nonzero(tpr >= rate - 1e-12)[0])
    return _between(thresholds, point)


def _require(rule: str, kind: str, have: int, *, needed: int) -> None:
    if have < needed:
        raise ThresholdRuleError(f"threshold rule {rule} needs at least {needed} {kind} images to measure that rate "
                                 f"(one error must be a step of at most the rate); the images hold {have}: choose "
                                 "another rule (eer, max_f1) or a larger split")


def _between(thresholds: torch.Tensor, point: int) -> float:
    """Halfway between the point's lowest positive score and the next lower score (0 below the
    last; halfway to 1 above the first point, which calls nothing positive)."""
    if point == 0:
        return min(1.0, (float(thresholds[1]) + 1) / 2)
    lower = float(thresholds[point + 1]) if point + 1 < len(thresholds) else 0.0
    return (float(thresholds[point]) + lower) / 2


def threshold_metrics(scores: torch.Tensor, targets: torch.Tensor, threshold: float) -> dict[str, float]:
    """{"accuracy", "precision", "recall", "f1"} of deciding positive where `scores` (N,) >= `threshold`,
    against `targets` (N,) 0/1; precision, recall and F1 of the positive class, 0 where undefined
    (scikit-learn's `zero_division=0`)."""
    check_binary(scores, targets)
    return decision_metrics(scores >= threshold, targets)


def decision_metrics(decided: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """`threshold_metrics` of (N,) bool decisions against (N,) 0/1 `targets`; flattened (image,
    class) pairs of a multi-label split give the micro-averaged metrics (scikit-learn's
    `average="micro"`; accuracy is then per label, not per image)."""
    if len(decided) == 0:
        raise ValueError("metrics at a threshold of zero images are undefined")
    truth = targets.bool()
    true_positives = int((decided & truth).sum())
    called, actual = int(decided.sum()), int(truth.sum())
    precision = true_positives / called if called else 0.0
    recall = true_positives / actual if actual else 0.0
    return {"accuracy": float((decided == truth).double().mean()), "precision": precision, "recall": recall,
            "f1": 2 * true_positives / (called + actual) if called + actual else 0.0}
