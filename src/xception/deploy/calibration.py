"""Calibration images for post-training quantization: from the data the weights were trained on.

Quantization picks each activation's int8 range from what the network sees on real inputs, so the
images must come from the training distribution, prepared exactly as evaluation prepares them (no
augmentation), and never from the evaluation split that measures what int8 costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import IterableDataset

from xception.deploy.quantize_methods import DEFAULT_CALIBRATION_SIZE

if TYPE_CHECKING:
    from xception.description import WeightsDescription


def calibration_images(description: WeightsDescription, *, count: int = DEFAULT_CALIBRATION_SIZE, seed: int = 0,
                       data_path: str | None = None) -> torch.Tensor:
    """`count` training images (count, C, H, W) float32 in [-1, 1], drawn without replacement with
    `seed` (the first `count` of a streamed source), prepared as for evaluation."""
    from xception.data import build_datasets
    from xception.data.config import recorded_data_config

    if count < 1:
        raise ValueError(f"the calibration set needs at least one image, got {count}")
    train = build_datasets(recorded_data_config(description, path=data_path)).train
    if isinstance(train, IterableDataset):
        images = []
        for image, _ in train:
            images.append(image)
            if len(images) == count:
                break
    else:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count]
        images = [train[int(i)][0] for i in order]
    return torch.stack(images)
