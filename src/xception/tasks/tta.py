"""Test-time augmentation: a batch seen as several views (the images, and with "flip" their mirror
images; with "5crop" five crops of them, with "flip+5crop" those and their mirrors), whose
probabilities are averaged.

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

"5crop" differs from torchvision's `FiveCrop` after a larger resize (AlexNet's ten crops of 224 px
from a 256 px image) in one way: it crops the prepared input itself, the four corners and the centre
at about 7/8 of its side (the side less an even margin, so that the centre crop is centred to the
pixel and a mirror image's crops are its crops' mirrors), and resizes each crop back to the input's
size. Every runtime here is built for one input size (the ONNX and OpenVINO graphs, AOTInductor), and
every preparation (photos, rasters, video frames) ends in that input, so the views need nothing
else; the price is that the crops are seen 8/7 larger than training saw them. The view set of
"flip+5crop" is closed under mirroring, so a model and its mirrored twin answer alike with it
(tests/test_tta.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from xception.tta_names import TTA, TTA_CHOICES

CROP_FRACTION = 0.875  # of the side: 224 / 256, the ten-crop evaluation of AlexNet and its successors


def tta_views(images: torch.Tensor, tta: TTA) -> list[torch.Tensor]:
    """The views of (N, C, H, W) `images`: themselves ("none"), and their horizontal mirror ("flip");
    `five_crops` ("5crop"), and those and their mirrors ("flip+5crop")."""
    if tta == "none":
        return [images]
    if tta == "flip":
        return [images, images.flip(-1)]
    if tta == "5crop":
        return five_crops(images)
    if tta == "flip+5crop":
        crops = five_crops(images)
        return crops + [crop.flip(-1) for crop in crops]
    raise ValueError(f"unknown test-time augmentation {tta!r}; one of {', '.join(TTA_CHOICES)}")


def crop_side(side: int) -> int:
    """The side of a crop of a `side`-pixel input: about 7/8 of it, less an even margin."""
    return side - 2 * round(side * (1 - CROP_FRACTION) / 2)


def five_crops(images: torch.Tensor) -> list[torch.Tensor]:
    """The top-left, top-right, bottom-left, bottom-right and centre crops of (N, C, H, W) `images`
    (`crop_side` of each side; torchvision's `five_crop` order), each resized back to (H, W) with
    antialiased bilinear interpolation (torchvision's `resize` of a tensor)."""
    height, width = images.shape[-2:]
    ch, cw = crop_side(height), crop_side(width)
    top, left = (height - ch) // 2, (width - cw) // 2  # even margins: exactly centred
    corners = [(0, 0), (0, width - cw), (height - ch, 0), (height - ch, width - cw), (top, left)]
    return [F.interpolate(images[..., y:y + ch, x:x + cw], size=(height, width), mode="bilinear",
                          align_corners=False, antialias=True) for y, x in corners]


def averaged_logits(logits: list[torch.Tensor], *, multilabel: bool, temperature: float = 1.0,
                    weights: Sequence[float] | None = None) -> torch.Tensor:
    """Logits (N, C) whose softmax (sigmoids, `multilabel`) is the mean over the views' (N, C)
    `logits` of softmax(logits / temperature) (sigmoids); `weights`: a weighted mean (they sum to 1)."""
    scaled = [view / temperature if temperature != 1 else view for view in logits]
    if len(scaled) == 1:
        return scaled[0]
    if weights is None:
        log_weights = torch.full((len(scaled), 1, 1), -math.log(len(scaled)), dtype=torch.float64)
    else:
        log_weights = torch.tensor(weights, dtype=torch.float64).log().view(-1, 1, 1)
    stacked = torch.stack(scaled).double()
    log_weights = log_weights.to(stacked.device)
    if not multilabel:
        return torch.logsumexp(stacked.log_softmax(-1) + log_weights, dim=0).float()
    log_p = torch.logsumexp(F.logsigmoid(stacked) + log_weights, dim=0)
    log_not_p = torch.logsumexp(F.logsigmoid(-stacked) + log_weights, dim=0)
    return (log_p - log_not_p).float()

