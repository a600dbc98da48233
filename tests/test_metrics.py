"""Metrics against scikit-learn, torchmetrics and cases computed by hand (docs/metrics.md)."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, top_k_accuracy_score

from xception.metrics.classification import (
    average_precision,
    average_precision_at_k,
    map_at_k,
    mean_average_precision,
    topk_accuracy,
    topk_correct,
)


def random_multilabel(seed: int, n: int = 200, c: int = 7, tie_levels: int | None = None):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, c, generator=generator)
    if tie_levels is not None:  # few distinct scores: many ties
        scores = (scores * tie_levels).floor() / tie_levels
    targets = (torch.rand(n, c, generator=generator) < 0.3).float()
    targets[:, -1] = 0  # one class without positives
    return scores, targets


@pytest.mark.parametrize("tie_levels", [None, 4])
def test_average_precision_matches_sklearn_with_and_without_ties(tie_levels):
    scores, targets = random_multilabel(0, tie_levels=tie_levels)
    ours = average_precision(scores, targets)
    for c in range(scores.shape[1] - 1):
        assert ours[c].item() == pytest.approx(
            average_precision_score(targets[:, c], scores[:, c]), abs=1e-12
        )
    assert math.isnan(ours[-1])


def test_mean_average_precision_matches_torchmetrics_macro():
    from torchmetrics.functional.classification import multilabel_average_precision

    scores, targets = random_multilabel(1, tie_levels=5)
    scores, targets = scores[:, :-1], targets[:, :-1]  # torchmetrics scores a class with no positive as 0
    expected = multilabel_average_precision(
        scores, targets.long(), num_labels=scores.shape[1], average="macro"
    )
    assert mean_average_precision(scores, targets).item() == pytest.approx(expected.item(), abs=1e-6)


def test_average_precision_at_k_hand_computed_with_a_tie():
    # Class 0: scores 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (pos). The tie 0.8 keeps row order: neg then pos.
    # Ranks: pos, neg, pos, pos -> P@1 = 1, P@3 = 2/3, P@4 = 3/4.
    scores = torch.tensor([[0.9], [0.8], [0.8], [0.1]])
    targets = torch.tensor([[1.0], [0.0], [1.0], [1.0]])
    assert average_precision_at_k(scores, targets, k=2).item() == pytest.approx(1 / 2)  # (1) / min(2, 3)
    assert average_precision_at_k(scores, targets, k=3).item() == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision_at_k(scores, targets, k=100).item() == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # Swapping the tied rows puts the positive first: ranks pos, pos, neg, pos.
    swapped = targets[[0, 2, 1, 3]]
    assert average_precision_at_k(scores, swapped, k=100).item() == pytest.approx((1 + 1 + 3 / 4) / 3)
    # Full AP groups the tie: threshold 0.8 has precision 2/3 for its positive.
    assert average_precision(scores, targets).item() == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert average_precision(scores, swapped).item() == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_average_precision_at_k_when_k_exceeds_positives_and_examples():
    # One positive at rank 2 of 3: AP@k = P@2 / min(k, 1) = 1/2 for every k >= 2, k beyond N included.
    scores = torch.tensor([[0.3], [0.2], [0.1]])
    targets = torch.tensor([[0.0], [1.0], [0.0]])
    for k in (2, 3, 100):
        assert average_precision_at_k(scores, targets, k=k).item() == pytest.approx(0.5)
    assert average_precision_at_k(scores, targets, k=1).item() == 0.0


def test_average_precision_at_k_equals_full_ap_without_ties_when_k_covers_all():
    scores, targets = random_multilabel(2)
    at_n = average_precision_at_k(scores, targets, k=scores.shape[0])
    assert torch.allclose(at_n[:-1], average_precision(scores, targets)[:-1], atol=1e-12)


def test_average_precision_at_k_against_a_loop_over_ranked_lists():
    scores, targets = random_multilabel(3, n=300, tie_levels=20)
    k = 50
    ours = average_precision_at_k(scores, targets, k=k)
    for c in range(scores.shape[1] - 1):
        ranked = sorted(range(300), key=lambda i: (-scores[i, c].item(), i))[:k]
        hits, total = 0, 0.0
        for rank, i in enumerate(ranked, start=1):
            if targets[i, c]:
                hits += 1
                total += hits / rank
        expected = total / min(k, int(targets[:, c].sum()))
        assert ours[c].item() == pytest.approx(expected, abs=1e-12)


def test_map_at_k_excludes_classes_without_positives_and_weights_the_rest():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.1, 0.9, 0.4]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # class 0 perfect (1.0); 1, 2 no positives
    assert map_at_k(scores, targets, k=100).item() == 1.0
    targets = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # class 1: positive at rank 2 -> 0.5
    assert map_at_k(scores, targets, k=100).item() == pytest.approx(0.75)
    weights = torch.tensor([3.0, 1.0, 100.0])  # class 2's weight is ignored: it has no positives
    assert map_at_k(scores, targets, k=100, class_weights=weights).item() == pytest.approx(
        (3 * 1 + 1 * 0.5) / 4
    )
    assert math.isnan(map_at_k(scores, torch.zeros_like(targets)).item())


def test_map_at_k_rejects_bad_input():
    scores = torch.rand(4, 3)
    with pytest.raises(ValueError, match="multi-hot"):
        map_at_k(scores, torch.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="class_weights"):
        map_at_k(scores, torch.ones(4, 3), class_weights=torch.ones(2))
    with pytest.raises(ValueError, match="same shape"):
        map_at_k(scores, torch.ones(4, 2))


def test_topk_accuracy_matches_sklearn():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(500, 12, generator=generator)
    targets = torch.randint(0, 12, (500,), generator=generator)
    ours = topk_accuracy(logits, targets, ks=(1, 5))
    for k in (1, 5):
        expected = top_k_accuracy_score(targets.numpy(), logits.numpy(), k=k, labels=np.arange(12))
        assert ours[f"top{k}"] == pytest.approx(expected)


def test_topk_correct_counts_add_up_over_shards_and_k_beyond_classes():
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(90, 4, generator=generator)
    targets = torch.randint(0, 4, (90,), generator=generator)
    whole = topk_correct(logits, targets, ks=(1, 5))
    shards = sum(topk_correct(logits[i::3], targets[i::3], ks=(1, 5)) for i in range(3))
    assert torch.equal(whole, shards)
    assert whole[1].item() == 90  # k = 5 > 4 classes: every example counts
    with pytest.raises(ValueError, match="class indices"):
        topk_correct(logits, targets + 4)


def test_metrics_rank_classes_in_chunks_without_changing_results(monkeypatch):
    import xception.metrics.classification as metrics

    scores, targets = random_multilabel(6, n=50, c=7, tie_levels=6)
    whole_ap, whole_at_k = average_precision(scores, targets), average_precision_at_k(scores, targets, k=10)
    monkeypatch.setattr(metrics, "CLASS_CHUNK", 3)  # chunks of 3, 3 and 1 classes
    assert torch.allclose(average_precision(scores, targets), whole_ap, equal_nan=True)
    assert torch.allclose(average_precision_at_k(scores, targets, k=10), whole_at_k, equal_nan=True)
