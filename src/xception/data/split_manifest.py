"""The record of which files a run trains and validates on: `split_manifest`, for the run directory,
so that a split cut by `val_split` (or cut down by `train_examples` / `val_examples`) can be
checked, shared and reproduced file by file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from xception.data.build import build_datasets
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.sources import sources_where

# The sources whose items are files under `path`.
FILE_SOURCES = sources_where("files")


def split_files(dataset: Dataset) -> list[str]:
    """The image file of each item of `dataset`, in item order: the first entry of each of its
    `samples` ((path, target) or (image path, mask path)), through any `Subset`s."""
    indices: list[int] | None = None
    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in indices] if indices is not None else list(dataset.indices)
        dataset = dataset.dataset
    if not hasattr(dataset, "samples"):
        raise ValueError(f"{type(dataset).__name__} does not list its files")
    samples = dataset.samples
    return [str(samples[i][0]) for i in (indices if indices is not None else range(len(samples)))]


def split_manifest(config: DataConfig, datasets: Datasets | None = None) -> dict[str, Any]:
    """{"source", "path", "val_split", "seed", "train": [...], "val": [...]}: the image files of each
    split in item order, as POSIX paths relative to `config.path`, for the file sources
    ("imagefolder", "segfolder"). JSON-ready.

    `datasets`: `build_datasets(config)` when the caller has it already (it is built otherwise).
    The lists are a pure function of the files on disk and the config, identical in every process.
    """
    if config.source not in FILE_SOURCES:
        raise ValueError(f"a split manifest lists files; data source {config.source!r} is not a folder of files "
                         f"(it works with {', '.join(FILE_SOURCES)})")
    datasets = datasets or build_datasets(config)
    root = Path(config.path)
    return {
        "source": config.source,
        "path": str(root),
        "val_split": config.val_split,
        "seed": config.seed,
        **{split: [Path(os.path.relpath(file, root)).as_posix() for file in split_files(dataset)]
           for split, dataset in (("train", datasets.train), ("val", datasets.val))},
    }
