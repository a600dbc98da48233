"""A tiny ImageNet-style folder for command-line tests: 20 x 20 grayscale PNGs of two classes that
differ in brightness, `train/<class>/` and `val/<class>/`, and the training flags of a model small
enough to train on it in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, *, per_class: dict[str, int]) -> Path:
    """`per_class[split]` images of each class ("dark", "light") in each split, seeded; returns root."""
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for label, level in (("dark", 60), ("light", 190)):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = (level + rng.normal(0, 20, (20, 20))).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


def write_class_folder(root: Path, counts: dict[str, int]) -> Path:
    """`counts[name]` seeded 20 x 20 grayscale PNGs in `root/<name>/` (one folder of class folders,
    for `val_split`), each class a different brightness; returns root."""
    rng = np.random.default_rng(0)
    for index, (label, count) in enumerate(counts.items()):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = (30 + 40 * index + rng.normal(0, 10, (20, 20))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def export_shards(folder: Path, to: Path, *, shard_size: int) -> Path:
    """`folder` written as WebDataset shards by `xception data export`, for `train_argv`'s model; returns to."""
    from xception.cli import main

    assert main(["data", "export", "--source", "imagefolder", "--data", str(folder), "--image-size", "16",
                 "--in-channels", "1", "--to", str(to), "--format", "shards", "--shard-size", str(shard_size)]) == 0
    return to


def train_argv(folder: Path, out: Path, *extra: str) -> list[str]:
    """`xception train` on `folder` into `out`: xception_small at width 1/8, 16 px, 6 steps of 4, one worker."""
    return ["train", "--model", "xception_small", "--set", "model.width=0.125", "--set", "model.middle_repeats=1",
            "--dataset", "imagefolder", "--data", str(folder), "--image-size", "16", "--in-channels", "1",
            "--recipe", "fashion_mnist_demo", "--steps", "6", "--batch-size", "4", "--precision", "fp32",
            "--device", "cpu", "--workers", "1", "--no-progress", "--set", "trackers=[]", "--out", str(out),
            *extra]


def starting_weights(path: Path, *, num_classes: int) -> Path:
    """Random weights of `train_argv`'s model for `num_classes` classes, with BatchNorm statistics of a
    noise batch (so that a lost or updated buffer shows): a starting point for `--weights`."""
    import torch

    from xception import create_model
    from xception.models.weights import save_weights

    torch.manual_seed(1)
    model = create_model("xception_small", num_classes=num_classes, in_channels=1, width=0.125, middle_repeats=1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: one batch sets the statistics
    model.train()(torch.rand(16, 1, 16, 16) * 2 - 1)
    return save_weights(model.eval(), path)
