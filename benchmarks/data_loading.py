"""Training items per second of each data source on this machine's CPUs, batched vs per-item preparation.

    .venv/bin/python benchmarks/data_loading.py [--workers 0 1] [--batches 30]

Prints a Markdown table. "batched" is the DataLoader calling the dataset's `__getitems__` (one
pipeline call per batch, Fashion-MNIST and mosaics); "per-item" hides `__getitems__` so that every
item goes through the pipeline alone, the usual torchvision pattern.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from xception.data import DataConfig, build_datasets
from xception.data.summary import loading_rate


class PerItem(Dataset):
    """The same dataset without `__getitems__`: DataLoader then fetches and prepares item by item."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


def photo_folder(root: Path, *, per_class: int) -> Path:
    """A two-class ImageNet-style folder of 400 x 300 random-noise JPEGs (decode cost of real photos)."""
    generator = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = generator.integers(0, 256, (300, 400, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg", quality=90)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory() as scratch:
        configs = {
            "fashion_mnist 28 px, 1 ch": DataConfig(
                source="fashion_mnist", path=None, image_size=28, in_channels=1
            ),
            "fashion_mnist 64 px, 3 ch": DataConfig(
                source="fashion_mnist", path=None, image_size=64, in_channels=3
            ),
            "mosaic 2x2, 56 px, 1 ch": DataConfig(source="mosaic", path=None, image_size=56, in_channels=1),
            "imagefolder 400x300 JPEG -> 128 px": DataConfig(
                source="imagefolder", path=str(photo_folder(Path(scratch), per_class=160)), image_size=128
            ),
        }
        print("| source | workers | batched items/s | per-item items/s |")
        print("|---|---|---|---|")
        for name, config in configs.items():
            train = build_datasets(config).train
            batches = args.batches if config.source != "imagefolder" else 2
            batch_size = args.batch_size if config.source != "imagefolder" else 64
            for workers in args.workers:
                per_item = loading_rate(
                    PerItem(train), batch_size=batch_size, batches=batches, num_workers=workers
                )
                batched = (
                    loading_rate(train, batch_size=batch_size, batches=batches, num_workers=workers)
                    if hasattr(train, "__getitems__")
                    else per_item
                )
                print(f"| {name} | {workers} | {batched:,.0f} | {per_item:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
