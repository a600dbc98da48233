"""`build_datasets`: a `DataConfig` -> the `Datasets` of its source, cut to its subsets;
`build_whole_folder`: every item of a folder, to evaluate on."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch
from torch.utils.data import Subset

from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.sources import get_source


def build_source(config: DataConfig) -> Datasets:
    """All of the training and validation items of `config.source` (see `DataConfig` for each).
    A source's builder (`xception.data.sources`) is imported here, when asked for, so its
    dependencies load only then."""
    source = get_source(config.source)
    if source.builder is None:
        raise ValueError(source.refusal)
    module, _, function = source.builder.partition(":")
    return getattr(importlib.import_module(module), function)(config)


def build_whole_folder(config: DataConfig) -> Datasets:
    """Every item of the folder at `config.path` as the validation split (the training split empty):
    what `xception eval --split all` evaluates. For the sources that are one folder of the user's
    files; the others come with their own test split."""
    match config.source:
        case "imagefolder":
            from xception.data.imagefolder import build_whole_imagefolder

            return build_whole_imagefolder(config)
        case "segfolder":
            from xception.data.segfolder import build_whole_segfolder

            return build_whole_segfolder(config)
    raise ValueError(f"--split all evaluates every image of a folder (--dataset imagefolder or segfolder); "
                     f"{config.source} comes with its own validation split: leave out --split")


def build_datasets(config: DataConfig) -> Datasets:
    """The training and validation datasets that `config` describes: its source's, cut to the
    `train_examples` / `val_examples` subsets when it asks for them."""
    datasets = build_source(config)
    return dataclasses.replace(datasets, train=subset(datasets.train, config.train_examples, seed=config.seed),
                               val=subset(datasets.val, config.val_examples, seed=config.seed + 1))


def subset(dataset: Any, size: int | None, *, seed: int) -> Any:
    """`size` items of `dataset` drawn at random with `seed` (the same ones every time), in that
    random order; `dataset` itself when `size` is None or not smaller."""
    if size is None or size >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist())
