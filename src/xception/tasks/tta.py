"""Test-time augmentation: a batch seen as several views (the images, and with "flip" their mirror
images), whose probabilities are averaged.

Each view's logits go through the temperature of the weights' decision policy and the softmax (or
the sigmoids) on their own; the probabilities are then averaged over the views (the mean of the
views' probabilities, as MONAI's and wsinfer's test-time augmentation average them, not the mean of
their logits). Everything downstream of a model takes logits, so `averaged_logits` returns logits
whose softmax (sigmoids) are those averaged probabilities: log p for a softmax (p sums to 1, so
softmax(log p) = p), log p - log(1 - p) for sigmoids, both computed with logsumexp so that a
probability that underflows in one view stays finite. With one view they are the logits / T
themselves, bit for bit.

"flip" is exact for a mirror-symmetric model only where every stride-2 stage pads both sides
alike: TensorFlow's "same" padding of an even-sized map pads one more pixel on the right, so a
model's mirror image ("twin") sees its input's mirror only at sizes such as 16k + 5 for
`xception_small` (21, 37, 53 px; tests/test_decisions_faces.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xception.tta_names import TTA, TTA_CHOICES


def tta_views(images: torch.Tensor, tta: TTA) -> list[torch.Tensor]:
    """The views of (N, C, H, W) `images`: themselves ("none"), and their horizontal mirror ("flip")."""
    if tta == "none":
        return [images]
    if tta == "flip":
        return [images, images.flip(-1)]
    raise ValueError(f"unknown test-time augmentation {tta!r}; one of {', '.join(TTA_CHOICES)}")


def averaged_logits(logits: list[torch.Tensor], *, multilabel: bool, temperature: float = 1.0) -> torch.Tensor:
    """Logits (N, C) whose softmax (sigmoids, `multilabel`) is the mean over the views' (N, C)
    `logits` of softmax(logits / temperature) (sigmoids)."""
    scaled = [view / temperature if temperature != 1 else view for view in logits]
    if len(scaled) == 1:
        return scaled[0]
    log_views = math.log(len(scaled))
    stacked = torch.stack(scaled).double()
    if not multilabel:
        return (torch.logsumexp(stacked.log_softmax(-1), dim=0) - log_views).float()
    log_p = torch.logsumexp(F.logsigmoid(stacked), dim=0) - log_views
    log_not_p = torch.logsumexp(F.logsigmoid(-stacked), dim=0) - log_views
    return (log_p - log_not_p).float()

