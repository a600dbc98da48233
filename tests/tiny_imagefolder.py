"""A tiny image folder on disk (`train/<class>/*.png`, `val/<class>/*.png`) for tests of the paths a
user takes (CLI, shards): class k is a grayscale image whose brightness depends on k, with noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("dark", "mid", "light")


def write_tiny_imagefolder(root: Path, *, train_per_class: int = 16, val_per_class: int = 7, size: int = 20,
                           seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                level = 40 + 85 * k
                pixels = np.clip(level + rng.normal(0, 30, (size, size)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / f"{i:03d}.png")
    return root
