"""Preprocessing of photographs with torchvision's transforms.v2, from a PIL image to the model input.

`DataConfig.resize` "crop" (the default). Training: the Inception crop (a random region of 8-100%
of the area and aspect ratio 3/4-4/3, resized to the input size; Szegedy et al. 2015, used for
Inception V3 and Xception) and a random horizontal flip. Evaluation: resize the shorter side to
floor(size / crop_fraction), then crop the centre (299 px from 341 at the Inception fraction 0.875).

"squash": the whole image resized to size x size, its aspect ratio not kept, as FaceForensics++
prepares its face crops (and its XceptionNet baseline evaluates them). Nothing is cropped, in
training either: a face crop already frames what matters, and a random crop would cut part of it
off. Training adds the horizontal flip only; `crop_fraction` is not used.

Both end in x / 127.5 - 1, Keras' `preprocess_input` "tf" mode, so values lie in [-1, 1].

Segmentation (`SegmentationPair`) takes the same geometry, drawn once for an image and its mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision import transforms
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from xception.data.config import DataConfig
from xception.data.photo_eval import PhotoEvalInput

INCEPTION_AREA = (0.08, 1.0)
INCEPTION_ASPECT = (3 / 4, 4 / 3)
# Segmentation's random crop: DeepLab scales an image by 0.5-2.0 and crops a fixed window, which
# covers about 1/4 to all of the image's area (smaller scales pad instead, which is not done here).
# 8% of the area, the Inception crop's floor, leaves too little context to label every pixel.
SEGMENTATION_AREA = (0.25, 1.0)


def to_model_range(in_channels: int) -> v2.Compose:
    """uint8 image tensor (C, H, W) -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * in_channels, [0.5] * in_channels)]
    )


def geometry(*, image_size: int, crop_fraction: float, interpolation: str, resize: str,
             training: bool) -> list[v2.Transform]:
    """The resize, crop and flip steps of `resize` ("crop" or "squash") on uint8 image tensors:
    training (random) or evaluation (deterministic)."""
    mode = InterpolationMode(interpolation)
    if resize == "squash":
        squash = v2.Resize((image_size, image_size), interpolation=mode, antialias=True)
        return [squash, v2.RandomHorizontalFlip()] if training else [squash]
    if resize != "crop":
        raise ValueError(f"resize must be 'crop' or 'squash', got {resize!r}")
    if training:
        return [v2.RandomResizedCrop(image_size, scale=INCEPTION_AREA, ratio=INCEPTION_ASPECT, interpolation=mode,
                                     antialias=True),
                v2.RandomHorizontalFlip()]
    return [v2.Resize(math.floor(image_size / crop_fraction), interpolation=mode, antialias=True),
            v2.CenterCrop(image_size)]


def photo_pipeline(*, image_size: int, in_channels: int, crop_fraction: float, interpolation: str, resize: str,
                   training: bool) -> v2.Compose:
    """PIL image -> float32 (in_channels, image_size, image_size) in [-1, 1] (`geometry`'s steps)."""
    steps = geometry(image_size=image_size, crop_fraction=crop_fraction, interpolation=interpolation, resize=resize,
                     training=training)
    return v2.Compose([v2.PILToTensor(), *steps, to_model_range(in_channels)])


@dataclass(frozen=True)
class PhotoTransforms:
    """The three preparations of a photo source: training items, validation items, `predict` inputs."""

    train: v2.Compose
    val: v2.Compose
    predict: PhotoEvalInput


def photo_transforms(config: DataConfig) -> PhotoTransforms:
    """`config.resize`'s training steps (the evaluation steps when config.augment is off), its
    evaluation steps for validation, and the same for any PIL image given to `predict`."""
    options = dict(image_size=config.image_size, in_channels=config.in_channels, crop_fraction=config.crop_fraction,
                   interpolation=config.interpolation, resize=config.resize)
    evaluation = photo_pipeline(**options, training=False)
    return PhotoTransforms(
        train=photo_pipeline(**options, training=True) if config.augment else evaluation,
        val=evaluation,
        predict=PhotoEvalInput(**options),
    )


class SegmentationPair:
    """(PIL image, uint8 (H, W) class indices) -> (image float32 (C, S, S) in [-1, 1], mask int64 (S, S)):
    one draw of `config.resize`'s geometry (`SEGMENTATION_AREA` for the random crop) applied to both.

    The mask is resampled by centre-aligned nearest neighbour (`NEAREST_EXACT`, PIL's NEAREST), so
    it keeps its class indices and the ignore label and stays on the pixels of the image, which is
    resized centre-aligned too. (torchvision's own mask resize is the top-left-aligned NEAREST,
    which shifts labels by up to half a source pixel.) The image is already in its model mode.
    """

    def __init__(self, config: DataConfig, *, training: bool) -> None:
        self.config, self.training = config, training and config.augment
        self.interpolation = InterpolationMode(config.interpolation)
        self.scale = to_model_range(config.in_channels)

    def __call__(self, image, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if mask.dtype != np.uint8 or mask.shape != (image.height, image.width):
            raise ValueError(f"expected a uint8 mask of the image's size {(image.height, image.width)}, "
                             f"got {mask.dtype} {mask.shape}")
        pixels, labels = F.pil_to_tensor(image), torch.from_numpy(np.ascontiguousarray(mask))[None]
        size, config = self.config.image_size, self.config

        def both(function, *args):
            return (function(pixels, *args, interpolation=self.interpolation, antialias=True),
                    function(labels, *args, interpolation=InterpolationMode.NEAREST_EXACT))

        if config.resize == "squash":
            pixels, labels = both(F.resize, [size, size])
        elif self.training:
            box = transforms.RandomResizedCrop.get_params(pixels, list(SEGMENTATION_AREA), list(INCEPTION_ASPECT))
            pixels, labels = both(F.resized_crop, *box, [size, size])
        else:
            pixels, labels = both(F.resize, [math.floor(size / config.crop_fraction)])
            pixels, labels = F.center_crop(pixels, [size]), F.center_crop(labels, [size])
        if self.training and torch.rand(()) < 0.5:
            pixels, labels = pixels.flip(-1), labels.flip(-1)
        return self.scale(pixels), labels[0].long()
