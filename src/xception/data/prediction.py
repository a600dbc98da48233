"""The evaluation preparation of a weight file's `Preprocessing`, for images that come one at a time
(`xception predict`, `explain`, `serve`): the one function from a description to a transform."""

from __future__ import annotations

from xception.data.photo_eval import PhotoEvalInput
from xception.description import Preprocessing


def prediction_transform(preprocessing: Preprocessing | None, *, in_channels: int):
    """The function PIL image -> model input (in_channels, S, S) in [-1, 1] that the weights were
    evaluated with; it needs no data on disk. Rasters (Fashion-MNIST and its mosaics): grayscale,
    resized to the source grid, then their evaluation pipeline; photos: the evaluation resize and
    centre crop (or the squash resize)."""
    if preprocessing is None:
        raise ValueError("the weight file records no data preparation (a foreign file whose head is not that of "
                         "published weights); convert or fine-tune it with this project")
    if preprocessing.source_size is not None:
        from xception.data.batch_transforms import (  # torchvision: rasters only
            PilToModelInput,
            TensorPipeline,
        )

        side = preprocessing.source_size
        pipeline = TensorPipeline(image_size=preprocessing.image_size, in_channels=in_channels, augment=False,
                                  padding=0, erase_probability=0.0)
        return PilToModelInput(source_size=(side, side), pipeline=pipeline)
    return PhotoEvalInput(image_size=preprocessing.image_size, in_channels=in_channels,
                          crop_fraction=preprocessing.crop_fraction, interpolation=preprocessing.interpolation,
                          resize=preprocessing.resize)
