"""A tiny in-memory classification task for the training tests: class k is a noisy image whose
mean brightness depends on k, so a small network learns it in a few steps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset


@dataclass
class TinyDatasets:
    """The fields of `xception.data.Datasets` that training reads."""

    train: TensorDataset
    val: TensorDataset
    num_classes: int
    class_names: list[str]
    multilabel: bool = False
    class_weights: torch.Tensor | None = None


def tiny_datasets(*, train_size: int = 64, val_size: int = 21, num_classes: int = 3, size: int = 16,
                  in_channels: int = 1, seed: int = 0) -> TinyDatasets:
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorDataset:
        labels = torch.randint(0, num_classes, (n,), generator=generator)
        level = (labels.float() / max(num_classes - 1, 1) * 1.6 - 0.8)[:, None, None, None]
        images = (level + 0.3 * torch.randn(n, in_channels, size, size, generator=generator)).clamp(-1, 1)
        return TensorDataset(images, labels)

    return TinyDatasets(make(train_size), make(val_size), num_classes, [f"class{k}" for k in range(num_classes)])
