"""`build_datasets`: a `DataConfig` -> the `Datasets` of its source."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch
from torch.utils.data import Subset

from xception.data.config import DataConfig
from xception.data.datasets import Datasets

# source -> (module, builder); imported on use so that a source's dependencies load only when needed.
BUILDERS: dict[str, tuple[str, str]] = {
    "fashion_mnist": ("xception.data.fashion_mnist", "build_fashion_mnist"),
    "imagefolder": ("xception.data.imagefolder", "build_imagefolder"),
    "multilabel": ("xception.data.manifest", "build_multilabel"),
    "mosaic": ("xception.data.mosaic", "build_mosaic"),
    "mosaic_masks": ("xception.data.mosaic_masks", "build_mosaic_masks"),  # per-pixel labels
    "webdataset": ("xception.data.shards", "build_webdataset"),
}


def build_datasets(config: DataConfig) -> Datasets:
    """The training and validation datasets that `config` describes (see `DataConfig` for each source)."""
    if config.source not in BUILDERS:
        raise ValueError(
            f"data source {config.source!r} has no builder yet; available: {', '.join(BUILDERS)}"
        )
    module, name = BUILDERS[config.source]
    datasets = getattr(importlib.import_module(module), name)(config)
    return dataclasses.replace(datasets, train=subset(datasets.train, config.train_examples, seed=config.seed),
                               val=subset(datasets.val, config.val_examples, seed=config.seed + 1))


def subset(dataset: Any, size: int | None, *, seed: int) -> Any:
    """`size` items of `dataset` drawn at random with `seed` (the same ones every time), in that
    random order; `dataset` itself when `size` is None or not smaller."""
    if size is None or size >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist())
