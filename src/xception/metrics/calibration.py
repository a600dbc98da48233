"""Calibration: whether a classifier's probabilities mean what they say, and temperature scaling.

Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks" (ICML 2017):
- the expected calibration error (section 2, eq. 3): the images are put into M = 15 equal-width bins
  of their confidence (the top probability), bin m holding confidences in ((m-1)/M, m/M]; ECE =
  sum_m |B_m| / N * |accuracy(B_m) - confidence(B_m)|. A multi-label model's every (image, class)
  probability is one binary prediction: its confidence is the probability and its accuracy the label.
  The bins are counts and sums (`CalibrationBins`), which add up over batches and processes.
- temperature scaling (section 4.2): one scalar T > 0 divides the logits, fitted by minimising the
  negative log-likelihood on a validation split. softmax(z / T) keeps the order of z, so the argmax
  never changes. The NLL is convex in 1 / T (a log-sum-exp of functions linear in it, minus a linear
  term), so bisecting its derivative finds the minimum within the bounds exactly.

Pure functions of tensors, as the rest of `xception.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ECE_BINS = 15  # Guo et al.'s M
TEMPERATURE_BOUNDS = (0.05, 20.0)  # a validation split that separates perfectly pushes T to the lower one


@dataclass
class CalibrationBins:
    """Per bin: `count` of predictions, the sum of their `confidence` and of their `correct` (0/1),
    float64 (bins,) each; add two with `+`."""

    count: torch.Tensor
    confidence: torch.Tensor
    correct: torch.Tensor

    @classmethod
    def empty(cls, bins: int = ECE_BINS, device: torch.device | str = "cpu") -> CalibrationBins:
        return cls(*torch.zeros(3, bins, dtype=torch.float64, device=device))

    def __add__(self, other: CalibrationBins) -> CalibrationBins:
        return CalibrationBins(self.count + other.count, self.confidence + other.confidence,
                               self.correct + other.correct)

    def stacked(self) -> torch.Tensor:
        """(3, bins): count, confidence, correct (to sum over processes in one collective)."""
        return torch.stack([self.count, self.confidence, self.correct])

    @classmethod
    def of_stacked(cls, stacked: torch.Tensor) -> CalibrationBins:
        return cls(*stacked.double().unbind(0))

    def expected_calibration_error(self) -> float:
        """ECE in [0, 1]; NaN for no prediction."""
        total = self.count.sum()
        if total == 0:
            return float("nan")
        gap = (self.correct - self.confidence).abs()  # = count * |accuracy - confidence| per bin
        return float(gap.sum() / total)

    def accuracy(self) -> torch.Tensor:
        """float64 (bins,): each bin's accuracy, NaN for an empty bin (the reliability diagram's bars)."""
        return self.correct / self.count.where(self.count > 0, torch.nan)

    def mean_confidence(self) -> torch.Tensor:
        return self.confidence / self.count.where(self.count > 0, torch.nan)

    def overall_confidence(self) -> float:
        """The mean confidence of every prediction (beside the accuracy: above it, over-confident); NaN for none."""
        total = self.count.sum()
        return float(self.confidence.sum() / total) if total > 0 else float("nan")


def calibration_bins(probabilities: torch.Tensor, targets: torch.Tensor, *, multilabel: bool = False,
                     bins: int = ECE_BINS) -> CalibrationBins:
    """The bins of (N, C) `probabilities` (softmax rows, or per-class sigmoids when `multilabel`)
    against `targets`: class indices (N,), or multi-hot (N, C)."""
    if multilabel:
        confidence, correct = probabilities.reshape(-1).double(), targets.reshape(-1).double()
    else:
        top, predicted = probabilities.double().max(dim=1)
        confidence, correct = top, (predicted == targets).double()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1  # ((m-1)/M, m/M] -> m - 1
    zeros = torch.zeros(bins, dtype=torch.float64, device=probabilities.device)
    return CalibrationBins(zeros.index_add(0, index, torch.ones_like(confidence)),
                           zeros.index_add(0, index, confidence), zeros.index_add(0, index, correct))


def expected_calibration_error(probabilities: torch.Tensor, targets: torch.Tensor, *, multilabel: bool = False,
                               bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. eq. 3) of (N, C) `probabilities` against `targets`, with `bins` equal-width bins."""
    return calibration_bins(probabilities, targets, multilabel=multilabel, bins=bins).expected_calibration_error()


def negative_log_likelihood(logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = 1.0,
                            multilabel: bool = False) -> float:
    """The mean NLL of (N, C) `logits / temperature`: softmax cross-entropy against class indices
    (N,), or the mean over classes of the sigmoid cross-entropy against multi-hot (N, C) targets."""
    scaled = logits.double() / temperature
    if multilabel:
        return float(F.binary_cross_entropy_with_logits(scaled, targets.double()))
    return float(F.cross_entropy(scaled, targets))


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, *, multilabel: bool = False,
                    bounds: tuple[float, float] = TEMPERATURE_BOUNDS, iterations: int = 100) -> float:
    """The temperature T in `bounds` that minimises `negative_log_likelihood(logits, targets,
    temperature=T)`: bisection on the derivative of the NLL in beta = 1 / T, which is nondecreasing
    (the NLL is convex in beta). 100 halvings of log(beta) leave it exact to float64 rounding."""
    if len(logits) == 0:
        raise ValueError("a temperature cannot be fitted on zero images")
    z = logits.double()
    if multilabel:
        y = targets.double()

        def slope(beta: float) -> float:  # d/dbeta of mean(softplus(beta z) - y beta z)
            return float(((torch.sigmoid(beta * z) - y) * z).mean())
    else:
        chosen = z.gather(1, targets[:, None].long())[:, 0]

        def slope(beta: float) -> float:  # d/dbeta of mean(logsumexp(beta z) - beta z_y)
            return float(((beta * z).softmax(1) * z).sum(1).sub(chosen).mean())

    low, high = -math.log(bounds[1]), -math.log(bounds[0])  # log beta
    if slope(math.exp(low)) >= 0:
        return bounds[1]
    if slope(math.exp(high)) <= 0:
        return bounds[0]
    for _ in range(iterations):
        middle = (low + high) / 2
        if slope(math.exp(middle)) < 0:
            low = middle
        else:
            high = middle
    return math.exp(-(low + high) / 2)
