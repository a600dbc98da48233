"""Preprocessing of photographs with torchvision's transforms.v2, from a PIL image to the model input.

Training: the Inception crop (a random region of 8-100% of the area and aspect ratio 3/4-4/3,
resized to the input size; Szegedy et al. 2015, used for Inception V3 and Xception) and a random
horizontal flip. Evaluation: resize the shorter side to floor(size / crop_fraction), then crop the
centre (299 px from 341 at the Inception fraction 0.875). Both end in x / 127.5 - 1, Keras'
`preprocess_input` "tf" mode, so values lie in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode, v2

from xception.data.config import DataConfig
from xception.data.images import MODES

INCEPTION_AREA = (0.08, 1.0)
INCEPTION_ASPECT = (3 / 4, 4 / 3)


def to_model_range(in_channels: int) -> v2.Compose:
    """uint8 image tensor (C, H, W) -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * in_channels, [0.5] * in_channels)]
    )


def inception_train_transform(*, image_size: int, in_channels: int, interpolation: str) -> v2.Compose:
    """PIL image -> float32 (in_channels, image_size, image_size) in [-1, 1], randomly cropped and flipped."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(image_size, scale=INCEPTION_AREA, ratio=INCEPTION_ASPECT,
                                 interpolation=InterpolationMode(interpolation), antialias=True),
            v2.RandomHorizontalFlip(),
            to_model_range(in_channels),
        ]
    )


def center_crop_eval_transform(*, image_size: int, in_channels: int, crop_fraction: float,
                               interpolation: str) -> v2.Compose:
    """PIL image -> float32 (in_channels, image_size, image_size) in [-1, 1]: resize the shorter side to
    floor(image_size / crop_fraction) with `interpolation` ("bilinear" or "bicubic"), centre crop."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(math.floor(image_size / crop_fraction), interpolation=InterpolationMode(interpolation),
                      antialias=True),
            v2.CenterCrop(image_size),
            to_model_range(in_channels),
        ]
    )


def squash_eval_transform(*, image_size: int, in_channels: int, interpolation: str) -> v2.Compose:
    """PIL image -> float32 (in_channels, image_size, image_size) in [-1, 1]: both sides resized to
    image_size, the aspect ratio not kept and nothing cropped (FaceForensics++' face crops)."""
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize((image_size, image_size), interpolation=InterpolationMode(interpolation), antialias=True),
            to_model_range(in_channels),
        ]
    )


class PhotoEvalInput:
    """A PIL image in any mode -> the evaluation input: converted to L or RGB, then the eval transform
    ("crop": resize and centre crop; "squash": resize both sides)."""

    def __init__(self, *, image_size: int, in_channels: int, crop_fraction: float, interpolation: str,
                 resize: str = "crop") -> None:
        self.mode = MODES[in_channels]
        if resize == "squash":
            self.transform = squash_eval_transform(image_size=image_size, in_channels=in_channels,
                                                   interpolation=interpolation)
        elif resize == "crop":
            self.transform = center_crop_eval_transform(image_size=image_size, in_channels=in_channels,
                                                        crop_fraction=crop_fraction, interpolation=interpolation)
        else:
            raise ValueError(f"resize must be 'crop' or 'squash', got {resize!r}")

    def __call__(self, image) -> torch.Tensor:
        return self.transform(image.convert(self.mode))


@dataclass(frozen=True)
class PhotoTransforms:
    """The three preparations of a photo source: training items, validation items, `predict` inputs."""

    train: v2.Compose
    val: v2.Compose
    predict: PhotoEvalInput


def photo_transforms(config: DataConfig) -> PhotoTransforms:
    """Inception crop and flip for training (the evaluation crop when config.augment is off), the
    evaluation crop for validation, and the same for any PIL image given to `predict`."""
    size, channels, fraction, resampling = (config.image_size, config.in_channels, config.crop_fraction,
                                            config.interpolation)
    evaluation = center_crop_eval_transform(image_size=size, in_channels=channels, crop_fraction=fraction,
                                            interpolation=resampling)
    return PhotoTransforms(
        train=inception_train_transform(image_size=size, in_channels=channels, interpolation=resampling)
        if config.augment
        else evaluation,
        val=evaluation,
        predict=PhotoEvalInput(image_size=size, in_channels=channels, crop_fraction=fraction,
                               interpolation=resampling),
    )
