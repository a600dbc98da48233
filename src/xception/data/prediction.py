"""The preparation a trained model's weights were evaluated with, rebuilt from the weight file's
metadata, for images that come one at a time (`xception predict`)."""

from __future__ import annotations

from typing import Any

from xception.data.batch_transforms import PilToModelInput, TensorPipeline
from xception.data.config import DataConfig
from xception.data.transforms import photo_transforms


def prediction_transform(metadata: dict[str, Any]):
    """The function PIL image -> model input (C, H, W) in [-1, 1] that the weights were evaluated
    with, from the data config in the metadata; it needs no data on disk. Fashion-MNIST and its
    mosaics (with or without masks): grayscale, resized to the source grid, then their evaluation pipeline; photo sources:
    the evaluation resize and centre crop."""
    data = dict(metadata.get("data") or {})
    if not data:
        raise ValueError("the weight file records no data preparation; it was not written by xception training")
    config = DataConfig(**{**data, "path": data.get("path") or "unused", "augment": False})
    if config.source in ("fashion_mnist", "mosaic", "mosaic_masks", "canvas"):
        side = 28 * (config.mosaic_grid if config.source != "fashion_mnist" else 1)
        pipeline = TensorPipeline(image_size=config.image_size, in_channels=config.in_channels, augment=False,
                                  padding=config.crop_padding, erase_probability=0.0)
        return PilToModelInput(source_size=(side, side), pipeline=pipeline)
    return photo_transforms(config).predict
