"""The decision policy of a classifier (`xception.description.Decision`): fitted on a validation
split's logits, applied to new logits.

Fitting (`fit_decision`): first the temperature (`xception.metrics.calibration.fit_temperature`, Guo et
al. 2017), then, for two classes and for multi-label weights, a threshold on the calibrated
probabilities (`xception.metrics.thresholds.choose_threshold`; every (image, class) pair of a
multi-label split is one binary prediction, so one threshold serves all classes, or, with
`per_class`, each class whose column can meet the rule gets its own). The threshold is a
probability after the temperature: what `xception predict` prints is what is compared with it.

Applying (`calibrated_logits`, `decide`): logits / temperature; the decided class (two classes: the
second where its probability reaches the threshold; else argmax) or classes (multi-label: those at
or above the threshold, 0.5 without one), with the reason in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from xception.description import DEFAULT_THRESHOLD_RULE, Decision
from xception.errors import UserError
from xception.metrics.calibration import fit_temperature
from xception.metrics.thresholds import ThresholdRuleError, choose_threshold

MIN_IMAGES = 20  # fewer validation images than this cannot fit a temperature or a threshold worth shipping


class DecisionError(UserError, ValueError):
    """The split cannot fit a decision: too few images, or one class only."""


def fit_decision(logits: torch.Tensor, targets: torch.Tensor, *, multilabel: bool,
                 rule: str | None = DEFAULT_THRESHOLD_RULE, split: str = "validation",
                 per_class: bool = False) -> Decision:
    """The `Decision` fitted on `split`'s (N, C) logits and targets (class indices (N,), or multi-hot
    (N, C)): its temperature, and for two classes or multi-label weights the threshold `rule`
    chooses (None: no threshold); `per_class` (multi-label): also each class's own threshold where
    its column meets the rule. Raises `DecisionError` for fewer than `MIN_IMAGES` images or one
    class, and `ThresholdRuleError` where the rule cannot be met."""
    if per_class and not multilabel:
        raise DecisionError("per-class thresholds are for multi-label weights; a single-label model decides by "
                            "argmax, or two classes at one threshold")
    if per_class and rule is None:
        raise DecisionError("per-class thresholds need a threshold rule (not none)")
    count = len(logits)
    if count < MIN_IMAGES:
        raise DecisionError(f"a decision is fitted on at least {MIN_IMAGES} images; the {split} split has {count}")
    present = (targets.sum(0) > 0).sum() if multilabel else targets.unique().numel()
    if int(present) < 2:
        raise DecisionError(f"the {split} split holds one class only: a temperature or threshold fitted on it "
                            "would only learn that class; use a split with images of every class")
    temperature = fit_temperature(logits, targets, multilabel=multilabel)
    threshold, class_thresholds = None, None
    if rule is not None and (multilabel or logits.shape[1] == 2):
        scaled = logits.double() / temperature
        if multilabel:
            threshold = choose_threshold(scaled.sigmoid().reshape(-1), targets.reshape(-1).long(), rule)
            if per_class:
                class_thresholds = tuple(_own_threshold(scaled[:, c].sigmoid(), targets[:, c].long(), rule)
                                         for c in range(scaled.shape[1]))
        else:
            threshold = choose_threshold(scaled.softmax(1)[:, 1], targets.long(), rule)
    return Decision(temperature=temperature, threshold=threshold, rule=rule if threshold is not None else None,
                    split=split, split_size=count, class_thresholds=class_thresholds)


def _own_threshold(scores: torch.Tensor, targets: torch.Tensor, rule: str) -> float | None:
    """One class's threshold, or None where its column cannot meet the rule (recorded: the class
    is then decided at the pooled threshold, and `Decision.reason` counts it)."""
    try:
        return choose_threshold(scores, targets, rule)
    except ThresholdRuleError:
        return None


def calibrated_logits(logits: torch.Tensor, decision: Decision | None) -> torch.Tensor:
    """`logits` divided by the decision's temperature (unchanged without a decision)."""
    return logits if decision is None or decision.temperature == 1 else logits / decision.temperature


@dataclass(frozen=True)
class Decided:
    """One image's decision: the `classes` decided (one for single-label weights; any number for
    multi-label ones), the `probability` of the first (None where none is decided), and why."""

    classes: tuple[int, ...]
    probability: float | None
    reason: str


def decide(probabilities: torch.Tensor, decision: Decision, *, class_names: Sequence[str],
           multilabel: bool) -> list[Decided]:
    """The decision of each row of (N, C) calibrated `probabilities` under `decision`."""
    rows = probabilities.double().tolist()
    decided = []
    for row in rows:
        if multilabel:
            thresholds = decision.thresholds(len(row))
            classes = tuple(sorted((i for i, p in enumerate(row) if p >= thresholds[i]), key=lambda i: -row[i]))
            why = (f"each >= threshold {thresholds[0]:.2f}" if decision.threshold is None
                   else f"each >= its {decision.reason()}" if decision.class_thresholds is not None
                   else f"each >= {decision.reason()}")
        elif decision.threshold is not None and len(row) == 2:
            positive = row[1] >= decision.threshold
            classes = (1 if positive else 0,)
            places = _places(row[1], decision.threshold)
            why = f"p({class_names[1]}) {row[1]:.{places}f} {'>=' if positive else '<'} {decision.reason(places)}"
        else:
            classes = (max(range(len(row)), key=row.__getitem__),)
            why = decision.reason()
        decided.append(Decided(classes, row[classes[0]] if classes else None, why))
    return decided


def _places(probability: float, threshold: float) -> int:
    """The decimal places (2 to 6) that show `probability` and `threshold` apart, so that "0.55 <
    threshold 0.55" reads "0.551 < threshold 0.552"."""
    places = 2
    while places < 6 and f"{probability:.{places}f}" == f"{threshold:.{places}f}":
        places += 1
    return places


def decision_text(decided: Decided, class_names: Sequence[str]) -> str:
    """e.g. "face, probability 0.83 (p(face) 0.83 >= threshold 0.37 (EER on 40 validation images))"."""
    names = ", ".join(class_names[i] for i in decided.classes) or "no class"
    probability = f", probability {decided.probability:.2f}" if decided.probability is not None else ""
    return f"{names}{probability} ({decided.reason})"
