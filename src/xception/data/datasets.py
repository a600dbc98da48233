"""`Datasets`: what every data source gives the training and evaluation code."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, IterableDataset


@dataclass(frozen=True)
class Datasets:
    """A training and a validation split, and what is needed to read their targets and predictions.

    train, val: items (image float32 (C, H, W) in [-1, 1], target); target is an int class index
        (single-label) or a float32 multi-hot (num_classes,) tensor (multilabel). Map-style
        datasets, except the webdataset source, whose IterableDatasets already split their shards
        over the ranks of torch.distributed and over DataLoader workers.
    class_names: num_classes names, in target order.
    class_weights: (num_classes,) float32 per-class weights for MAP@100 (multilabel sources), or None.
    """

    train: Dataset | IterableDataset
    val: Dataset | IterableDataset
    num_classes: int
    class_names: list[str]
    multilabel: bool
    class_weights: torch.Tensor | None

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.class_weights is not None and self.class_weights.shape != (self.num_classes,):
            raise ValueError(
                f"class_weights has shape {tuple(self.class_weights.shape)}, expected ({self.num_classes},)"
            )
