"""`evaluate` over a loader: counts and metrics from a model whose outputs are chosen by hand."""

import pytest
import torch
from sklearn.metrics import average_precision_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from xception.tasks.classification import evaluate


def _loader(scores: torch.Tensor, targets: torch.Tensor, batch_size: int = 2) -> DataLoader:
    """Images (N, C, 1, 1) that a Flatten "model" turns back into the given (N, C) scores."""
    return DataLoader(TensorDataset(scores[:, :, None, None], targets), batch_size=batch_size)


def test_evaluate_single_label_counts_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0],   # target 0: top-1
                           [0.0, 3.0, 2.0, 1.0, -1.0, -2.0],   # target 2: second, top-5 only
                           [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],     # target 5: sixth, neither
                           [0.0, 0.0, 9.0, 0.0, 0.0, 0.0],     # target 2: top-1
                           [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])    # target 1: fifth, top-5 only
    targets = torch.tensor([0, 2, 5, 2, 1])
    metrics = evaluate(nn.Flatten(), _loader(logits, targets), device=torch.device("cpu"), multilabel=False)
    assert (metrics["examples"], metrics["correct1"], metrics["correct5"]) == (5, 2, 4)
    assert metrics["top1"] == 0.4 and metrics["top5"] == 0.8
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(logits, targets).item())


def test_evaluate_multilabel_matches_scikit_learn():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(30, 4, generator=g)
    targets = (torch.rand(30, 4, generator=g) < 0.3).float()
    targets[:, 3] = 0  # a class without positives: its AP is undefined (NaN) and left out of the mean
    metrics = evaluate(nn.Flatten(), _loader(scores, targets, batch_size=7), device=torch.device("cpu"),
                       multilabel=True)
    expected = [average_precision_score(targets[:, c].numpy(), scores[:, c].numpy()) for c in range(3)]
    assert metrics["examples"] == 30
    assert metrics["per_class_ap"][:3] == pytest.approx(expected, abs=1e-6)
    assert metrics["per_class_ap"][3] != metrics["per_class_ap"][3]  # NaN
    assert metrics["map"] == pytest.approx(sum(expected) / 3, abs=1e-6)
