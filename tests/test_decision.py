"""The decision policy: temperature scaling (Guo et al. 2017) against an independent scipy fit, ECE
against torchmetrics, the threshold rules and the metrics at a threshold against scikit-learn, and the
policy's round trip through the weights' description."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_curve
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from xception.description import Decision, WeightsDescription, parse_threshold_rule
from xception.metrics.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from xception.metrics.thresholds import ThresholdRuleError, choose_threshold, threshold_metrics
from xception.tasks.decision import DecisionError, calibrated_logits, decide, decision_text, fit_decision


def overconfident(count: int, classes: int, *, seed: int, sharpness: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose argmax is right about 70% of the time but whose softmax says ~99%."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(classes, (count,), generator=generator)
    logits = torch.randn(count, classes, generator=generator)
    logits[torch.arange(count), targets] += 1.5
    return logits * sharpness, targets


def scipy_temperature(logits: torch.Tensor, targets: torch.Tensor, *, multilabel: bool) -> float:
    z, y = logits.double().numpy(), targets.numpy()

    def nll(temperature: float) -> float:
        scaled = z / temperature
        if multilabel:
            return float(np.mean(np.logaddexp(0, scaled) - y * scaled))
        top = scaled.max(1, keepdims=True)
        log_sum = np.log(np.exp(scaled - top).sum(1)) + top[:, 0]
        return float(np.mean(log_sum - scaled[np.arange(len(y)), y]))

    return minimize_scalar(nll, bounds=(0.05, 20), method="bounded", options={"xatol": 1e-7}).x


@pytest.mark.parametrize("classes", [2, 7])
def test_fit_temperature_matches_scipy_and_keeps_the_argmax(classes):
    logits, targets = overconfident(300, classes, seed=classes)
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(scipy_temperature(logits, targets, multilabel=False), abs=1e-3)
    assert temperature > 1.5  # over-confident logits are cooled
    assert torch.equal(calibrated_logits(logits, Decision(temperature=temperature)).argmax(1), logits.argmax(1))
    assert negative_log_likelihood(logits, targets, temperature=temperature) < negative_log_likelihood(logits, targets)


def test_fit_temperature_of_sigmoids_matches_scipy():
    generator = torch.Generator().manual_seed(3)
    targets = (torch.rand(200, 5, generator=generator) < 0.3).long()
    logits = (targets * 2 - 1) * 0.8 + torch.randn(200, 5, generator=generator)
    logits = logits * 0.3  # under-confident: the fit sharpens (T < 1)
    temperature = fit_temperature(logits, targets, multilabel=True)
    assert temperature < 1
    assert temperature == pytest.approx(scipy_temperature(logits, targets, multilabel=True), abs=1e-3)


def test_ece_matches_torchmetrics_with_15_bins():
    logits, targets = overconfident(500, 6, seed=1, sharpness=1.3)
    probabilities = logits.softmax(1)
    ours = expected_calibration_error(probabilities, targets)
    theirs = float(multiclass_calibration_error(probabilities, targets, num_classes=6, n_bins=15, norm="l1"))
    assert ours == pytest.approx(theirs, abs=1e-6) and ours > 0.02
    scores, labels = torch.rand(400, 3, dtype=torch.float64), (torch.rand(400, 3) < 0.4).long()
    flat = float(binary_calibration_error(scores.reshape(-1), labels.reshape(-1), n_bins=15, norm="l1"))
    assert expected_calibration_error(scores, labels, multilabel=True) == pytest.approx(flat, abs=1e-6)


def test_temperature_fitted_on_one_half_halves_the_ece_of_the_other():
    logits, targets = overconfident(2000, 4, seed=5)
    decision = fit_decision(logits[:1000], targets[:1000], multilabel=False)
    held_out, truth = logits[1000:], targets[1000:]
    before = expected_calibration_error(held_out.softmax(1), truth)
    after = expected_calibration_error(calibrated_logits(held_out, decision).softmax(1), truth)
    assert before > 0.1 and after <= before / 2
    assert decision.threshold is None and decision.split_size == 1000  # four classes: argmax, no threshold


def scored(count: int, *, seed: int, positives: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    targets = (torch.rand(count, generator=generator) < positives).long()
    scores = (torch.randn(count, generator=generator) + 1.2 * targets).sigmoid()
    return scores, targets


def sklearn_roc(scores, targets):
    fpr, tpr, thresholds = roc_curve(targets.numpy(), scores.numpy(), drop_intermediate=False)
    return fpr, tpr, thresholds


def test_eer_threshold_balances_the_two_error_rates_as_well_as_any_roc_point():
    scores, targets = scored(300, seed=0)
    threshold = choose_threshold(scores, targets, "eer")
    fpr, tpr, _ = sklearn_roc(scores, targets)
    decided = scores >= threshold
    our_fpr = float(decided[targets == 0].double().mean())
    our_fnr = 1 - float(decided[targets == 1].double().mean())
    assert abs(our_fpr - our_fnr) == pytest.approx(np.abs(fpr - (1 - tpr)).min(), abs=1e-12)


def test_max_f1_threshold_reaches_the_best_f1_of_any_threshold():
    scores, targets = scored(300, seed=1, positives=0.3)
    threshold = choose_threshold(scores, targets, "max_f1")
    best = max(f1_score(targets.numpy(), (scores >= t).numpy()) for t in scores.unique().tolist())
    assert f1_score(targets.numpy(), (scores >= threshold).numpy()) == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("rule", ["fpr=0.05", "tpr=0.9"])
def test_rate_rules_meet_their_rate_at_the_best_other_rate(rule):
    scores, targets = scored(600, seed=2)
    threshold = choose_threshold(scores, targets, rule)
    kind, rate = parse_threshold_rule(rule)
    fpr, tpr, _ = sklearn_roc(scores, targets)
    decided = scores >= threshold
    our_fpr, our_tpr = float(decided[targets == 0].double().mean()), float(decided[targets == 1].double().mean())
    if kind == "fpr":
        assert our_fpr <= rate and our_tpr == pytest.approx(tpr[fpr <= rate].max())
    else:
        assert our_tpr >= rate and our_fpr == pytest.approx(fpr[tpr >= rate].min())


def test_threshold_rules_refuse_what_the_data_cannot_meet():
    scores = torch.linspace(0.1, 0.9, 30)
    two_positives = torch.zeros(30, dtype=torch.long)
    two_positives[-2:] = 1
    with pytest.raises(ThresholdRuleError, match="tpr=0.99 needs at least 100 positive images.*hold 2"):
        choose_threshold(scores, two_positives, "tpr=0.99")
    with pytest.raises(ThresholdRuleError, match="fpr=0.01 needs at least 100 negative"):
        choose_threshold(scores, two_positives, "fpr=0.01")
    with pytest.raises(ThresholdRuleError, match="one class only"):
        choose_threshold(scores, torch.zeros(30, dtype=torch.long), "eer")
    with pytest.raises(ValueError, match="unknown threshold rule 'f1'"):
        choose_threshold(scores, two_positives, "f1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_threshold_rule("fpr=1.5")


def test_metrics_at_a_threshold_match_scikit_learn():
    scores, targets = scored(250, seed=4)
    ours = threshold_metrics(scores, targets, 0.61)
    truth, decided = targets.numpy(), (scores >= 0.61).numpy()
    assert ours == pytest.approx({"accuracy": accuracy_score(truth, decided),
                                  "precision": precision_score(truth, decided),
                                  "recall": recall_score(truth, decided), "f1": f1_score(truth, decided)}, abs=1e-12)


def test_fit_decision_refuses_small_and_one_class_splits():
    logits, targets = overconfident(19, 2, seed=0)
    with pytest.raises(DecisionError, match="at least 20 images; the validation split has 19"):
        fit_decision(logits, targets, multilabel=False)
    logits, _ = overconfident(40, 2, seed=0)
    with pytest.raises(DecisionError, match="one class only"):
        fit_decision(logits, torch.ones(40, dtype=torch.long), multilabel=False)


def test_two_class_decision_takes_the_second_class_at_the_threshold_and_says_why():
    logits, targets = overconfident(40, 2, seed=7)
    decision = fit_decision(logits, targets, multilabel=False, rule="eer")
    assert decision.rule == "eer" and decision.split_size == 40 and 0 < decision.threshold < 1
    probabilities = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    probabilities[0] = torch.tensor([1 - decision.threshold, decision.threshold], dtype=torch.float64)
    first, second = decide(probabilities, decision, class_names=["real", "fake"], multilabel=False)
    assert first.classes == (1,) and second.classes == (0,) and second.probability == 1.0
    text = decision_text(second, ["real", "fake"])
    assert text == f"real, probability 1.00 (p(fake) 0.00 < threshold {decision.threshold:.2f} (EER on 40 validation images))"


def test_decision_round_trips_through_the_description_and_old_metadata_has_none():
    decision = Decision(temperature=1.7, threshold=0.37, rule="fpr=0.01", split_size=40)
    description = WeightsDescription(model_name="xception_small", num_classes=2, in_channels=3, task="classification",
                                     image_size=32, class_names=("a", "b"), decision=decision)
    metadata = {**description.to_metadata(), "model_name": "xception_small", "num_classes": 2}
    read = WeightsDescription.from_metadata(metadata, task="classification", default_image_size=32)
    assert read.decision == decision and "decision" not in read.provenance
    assert decision.reason() == "threshold 0.37 (FPR 0.01 on 40 validation images)"
    del metadata["decision"]
    assert WeightsDescription.from_metadata(metadata, task="classification", default_image_size=32).decision is None


def test_multilabel_decision_takes_every_class_at_one_threshold():
    generator = torch.Generator().manual_seed(8)
    targets = (torch.rand(60, 4, generator=generator) < 0.4).long()
    logits = 3 * (targets * 2 - 1) + 2 * torch.randn(60, 4, generator=generator)
    decision = fit_decision(logits, targets, multilabel=True, rule="max_f1")
    assert decision.rule == "max_f1" and decision.split_size == 60
    probabilities = calibrated_logits(logits, decision).sigmoid()
    decided = decide(probabilities, decision, class_names=list("abcd"), multilabel=True)
    for row, one in zip(probabilities.tolist(), decided, strict=True):
        assert set(one.classes) == {i for i, p in enumerate(row) if p >= decision.threshold}
    flat = (probabilities >= decision.threshold).reshape(-1).numpy()
    assert f1_score(targets.reshape(-1).numpy(), flat) >= f1_score(targets.reshape(-1).numpy(),
                                                                   (probabilities >= 0.5).reshape(-1).numpy())


def multilabel_split(seed: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """80 images, 4 labels: each label's logits shifted its own way (so that their best thresholds
    differ), and label 3 with no positive at all."""
    generator = torch.Generator().manual_seed(seed)
    targets = (torch.rand(80, 4, generator=generator) < torch.tensor([0.5, 0.3, 0.6, 0.0])).long()
    logits = 2 * (targets * 2 - 1) + 1.5 * torch.randn(80, 4, generator=generator) + torch.tensor([-2.0, 0.0, 2.5, 0])
    return logits, targets


def test_per_class_thresholds_are_each_columns_own_and_the_pooled_one_where_a_column_cannot_meet_the_rule():
    logits, targets = multilabel_split()
    decision = fit_decision(logits, targets, multilabel=True, rule="max_f1", per_class=True)
    probabilities = calibrated_logits(logits, decision).sigmoid()
    pooled = choose_threshold(probabilities.reshape(-1), targets.reshape(-1), "max_f1")
    assert decision.threshold == pytest.approx(pooled)
    for c in range(3):  # each measurable label: its own max-F1 threshold, at least as good as the pooled one there
        own = decision.class_thresholds[c]
        assert own == pytest.approx(choose_threshold(probabilities[:, c], targets[:, c], "max_f1"))
        assert f1_score(targets[:, c], probabilities[:, c] >= own) >= f1_score(targets[:, c], probabilities[:, c] >= pooled)
    assert decision.class_thresholds[3] is None and decision.thresholds(4)[3] == decision.threshold
    assert len({round(t, 3) for t in decision.class_thresholds[:3]}) == 3  # they differ
    assert "per-class thresholds (max F1 on 80 validation images; 3 of 4 classes their own, the other 1 at " \
        in decision.reason()
    decided = decide(probabilities, decision, class_names=list("abcd"), multilabel=True)
    thresholds = decision.thresholds(4)
    for row, one in zip(probabilities.tolist(), decided, strict=True):
        assert set(one.classes) == {i for i, p in enumerate(row) if p >= thresholds[i]}
        assert one.reason.startswith("each >= its per-class thresholds")
    metadata = WeightsDescription(model_name="xception_small", num_classes=4, in_channels=1, task="classification",
                                  image_size=32, multilabel=True, decision=decision).to_metadata()
    metadata.update(model_name="xception_small", num_classes=4)  # as the weights file's header adds them
    again = WeightsDescription.from_metadata(json.loads(json.dumps(metadata)), task="classification",
                                             default_image_size=32)
    assert again.decision == decision  # through JSON: the list comes back a tuple, None stays None
    with pytest.raises(DecisionError, match="per-class thresholds are for multi-label weights"):
        fit_decision(*overconfident(60, 2, seed=1), multilabel=False, per_class=True)


def test_multilabel_evaluation_reports_micro_metrics_at_the_per_class_thresholds_as_scikit_learn():
    from torch.utils.data import DataLoader, TensorDataset

    from xception.tasks.classification import evaluate

    logits, targets = multilabel_split(seed=10)
    decision = fit_decision(logits, targets, multilabel=True, rule="eer", per_class=True)
    loader = DataLoader(TensorDataset(logits, targets), batch_size=32)
    metrics = evaluate(lambda x: x, loader, device=torch.device("cpu"), multilabel=True, decision=decision)
    decided = (calibrated_logits(logits, decision).sigmoid() >= torch.tensor(decision.thresholds(4))).numpy()
    truth = targets.numpy()
    assert metrics["threshold"] == decision.threshold
    assert metrics["precision"] == pytest.approx(precision_score(truth, decided, average="micro"), abs=1e-12)
    assert metrics["recall"] == pytest.approx(recall_score(truth, decided, average="micro"), abs=1e-12)
    assert metrics["f1"] == pytest.approx(f1_score(truth, decided, average="micro"), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx((truth == decided).mean(), abs=1e-12)  # per label
    assert "accuracy" not in evaluate(lambda x: x, loader, device=torch.device("cpu"), multilabel=True)
