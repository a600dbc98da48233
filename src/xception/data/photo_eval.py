"""The evaluation preparation of one photo (`predict`, `serve`, `explain`), in torch and PIL alone.

The same steps as the evaluation pipeline of `xception.data.transforms.photo_pipeline`: the image
as uint8 (C, H, W), resized with antialiasing ("crop": the shorter side to floor(image_size /
crop_fraction), then the centre `image_size` square; "squash": both sides to `image_size`), then
x / 255 scaled to [-1, 1]. Written here without torchvision because importing torchvision imports
`torch._dynamo` (through `torchvision.ops`): 2.1 s of a 5 s `xception predict` on 2 cores
(BENCHMARKS.md, "What a user waits for"). torchvision's resize of a uint8 image tensor is torch's
`interpolate` with antialiasing, which this calls the same way; `tests/test_photo_eval.py` checks
that both give the same tensor, to the bit, over random sizes, modes and both interpolations.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from xception.data.images import MODES


class PhotoEvalInput:
    """A PIL image in any mode -> float32 (in_channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, *, image_size: int, in_channels: int, crop_fraction: float, interpolation: str,
                 resize: str = "crop") -> None:
        if resize not in ("crop", "squash"):
            raise ValueError(f"resize must be 'crop' or 'squash', got {resize!r}")
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
        self.mode = MODES[in_channels]
        self.image_size, self.crop_fraction = image_size, crop_fraction
        self.interpolation, self.resize = interpolation, resize

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the image is resized to before the crop."""
        if self.resize == "squash":
            return self.image_size, self.image_size
        short = math.floor(self.image_size / self.crop_fraction)
        # The shorter side to `short`, the longer in proportion, rounded down (as torchvision does).
        return (short, int(short * width / height)) if height <= width else (int(short * height / width), short)

    def __call__(self, image) -> torch.Tensor:
        pixels = np.array(image.convert(self.mode), copy=True)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        x = torch.from_numpy(pixels).permute(2, 0, 1)  # uint8 (C, H, W)
        size = self.resized_size(*x.shape[1:])
        if size != tuple(x.shape[1:]):
            x = F.interpolate(x[None], size=list(size), mode=self.interpolation, align_corners=False,
                              antialias=True)[0]
        if self.resize == "crop":
            top = int(round((x.shape[1] - self.image_size) / 2.0))
            left = int(round((x.shape[2] - self.image_size) / 2.0))
            x = x[:, top:top + self.image_size, left:left + self.image_size]
        return x.float().mul_(1.0 / 255).sub_(0.5).div_(0.5)  # as ToDtype(scale=True) then Normalize(0.5, 0.5)
