"""One score per video (`xception.metrics.aggregate`): mean, median and max against NumPy, and the
DFDC winner's confident strategy on hand-made cases of each of its three branches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xception.metrics.aggregate import aggregate_probabilities, confident_strategy


def two_class(fake: list[float]) -> torch.Tensor:
    p = torch.tensor(fake, dtype=torch.float64)
    return torch.stack([1 - p, p], dim=1)


@pytest.mark.parametrize("how,reference", [("mean", np.mean), ("median", np.median), ("max", np.max)])
def test_mean_median_max_are_numpys(how, reference):
    frames = np.random.default_rng(0).random((10, 3))
    got = aggregate_probabilities(torch.tensor(frames), how)
    assert got.numpy() == pytest.approx(reference(frames, axis=0), abs=1e-12)


def test_confident_takes_the_confident_fakes_when_there_are_enough():
    # 32 frames, 14 above 0.8: 14 > 32 // 2.5 = 12 and 14 > 11, so the mean of those 14.
    scores = [0.9] * 10 + [0.95] * 4 + [0.1] * 18
    assert float(confident_strategy(torch.tensor(scores))) == pytest.approx((0.9 * 10 + 0.95 * 4) / 14)
    # 12 above 0.8 is not more than 12: neither branch of the fakes; 20 below 0.2 of 32 is not > 90 %.
    scores = [0.9] * 12 + [0.1] * 20
    assert float(confident_strategy(torch.tensor(scores))) == pytest.approx(np.mean(scores))


def test_confident_takes_the_confident_reals_above_ninety_percent():
    scores = [0.05] * 19 + [0.15] + [0.7]  # 20 of 21 below 0.2: more than 90 %
    assert float(confident_strategy(torch.tensor(scores))) == pytest.approx((0.05 * 19 + 0.15) / 20)
    # A short video: 11 frames all above 0.8 are not "more than 11", so the plain mean.
    assert float(confident_strategy(torch.tensor([0.9] * 10 + [0.99]))) == pytest.approx((9 + 0.99) / 11)


def test_confident_needs_two_classes_and_aggregates_need_frames():
    assert aggregate_probabilities(two_class([0.9] * 13), "confident")[1] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="two classes"):
        aggregate_probabilities(torch.rand(4, 3), "confident")
    with pytest.raises(ValueError, match="N >= 1"):
        aggregate_probabilities(torch.zeros(0, 2), "mean")
