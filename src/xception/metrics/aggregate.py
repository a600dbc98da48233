"""One score per video from the scores of its frames (`xception predict VIDEO --aggregate`).

- mean: the average (DeepfakeBench's video-level score, and `xception eval --group-*`'s);
- median: the middle value, robust to a few outlying frames;
- max: the most suspicious frame (a video is as fake as its worst frame);
- confident: the DFDC winner's "confident strategy" (Seferbekov, 1st place of Facebook's Deepfake
  Detection Challenge, 2020: selimsef/dfdc_deepfake_challenge, `kernel_utils.confident_strategy`),
  on the probability of the positive (fake) class: when more than 11 frames, and more than
  n // 2.5 of the n, are above 0.8, the mean of those; else when more than 90 % of them are below
  0.2, the mean of those; else the mean of all.
"""

from __future__ import annotations

import torch

from xception.video_names import Aggregate

CONFIDENT_HIGH = 0.8  # the strategy's t
CONFIDENT_LOW = 0.2
CONFIDENT_MIN_FRAMES = 11  # "11 frames are detected as fakes with high probability"


def aggregate_probabilities(probabilities: torch.Tensor, how: Aggregate) -> torch.Tensor:
    """(N, C) frame probabilities -> (C,) the video's, aggregated per class by `how` (mean, median,
    max); "confident" aggregates the positive class of two-class probabilities (column 1) and
    returns [1 - p, p]. ValueError for no frame, or "confident" with other than two classes."""
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise ValueError(f"aggregating needs (N >= 1, C) probabilities, got shape {tuple(probabilities.shape)}")
    if how == "mean":
        return probabilities.mean(0)
    if how == "median":
        # The mean of the two middle values for an even count (NumPy's median), not torch's lower one.
        return probabilities.quantile(0.5, dim=0)
    if how == "max":
        return probabilities.amax(0)
    if how == "confident":
        if probabilities.shape[1] != 2:
            raise ValueError(f"the confident strategy scores two classes (real, fake); these weights have "
                             f"{probabilities.shape[1]}")
        positive = confident_strategy(probabilities[:, 1])
        return torch.stack([1 - positive, positive])
    raise ValueError(f"unknown aggregate {how!r}: mean, median, max or confident")


def confident_strategy(scores: torch.Tensor) -> torch.Tensor:
    """The DFDC winner's video score of (N,) positive-class frame probabilities (see the module)."""
    count = len(scores)
    high, low = scores > CONFIDENT_HIGH, scores < CONFIDENT_LOW
    fakes = int(high.sum())
    if fakes > count // 2.5 and fakes > CONFIDENT_MIN_FRAMES:
        return scores[high].mean()
    if int(low.sum()) > 0.9 * count:
        return scores[low].mean()
    return scores.mean()
