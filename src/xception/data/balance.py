"""Class imbalance, from the training split's class counts: per-item sampling weights for the
balanced sampler (`DataConfig.sampler`, drawn in `xception.data.loader`) and per-class weights for
the loss (`DataConfig.class_weighting`).

Both read the targets without opening an image: the `targets` of an ImageFolder, of a
`val_split` folder or of an in-memory source (Fashion-MNIST), through any `Subset`s. Single-label
sources only: a multi-hot target has no one class to count, and a mask has a count per pixel.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, IterableDataset, Subset

from xception.data.config import DataConfig
from xception.data.datasets import Datasets


def class_targets(dataset: Dataset) -> torch.Tensor:
    """int64 (N,) class index of each item of `dataset`, in item order, from its `targets`."""
    indices: torch.Tensor | None = None
    while isinstance(dataset, Subset):
        own = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = own if indices is None else own[indices]
        dataset = dataset.dataset
    targets = getattr(dataset, "targets", None)
    if isinstance(dataset, IterableDataset) or targets is None:
        raise ValueError(f"class counts need a map-style dataset that lists its targets ({type(dataset).__name__} "
                         "does not): use an imagefolder or fashion_mnist source, not shards or masks")
    targets = torch.as_tensor(targets)
    if targets.ndim != 1:
        raise ValueError("class counts need single-label targets; these are multi-hot rows (a multilabel source)")
    return targets.long() if indices is None else targets.long()[indices]


def class_counts(dataset: Dataset, num_classes: int) -> torch.Tensor:
    """int64 (num_classes,) number of items of each class in `dataset`."""
    return torch.bincount(class_targets(dataset), minlength=num_classes)


def balanced_sample_weights(targets: torch.Tensor) -> torch.Tensor:
    """float64 (N,) weight 1 / n_c of each item of class c (targets: int64 (N,)): drawn with these
    weights, every class present comes up equally often in expectation."""
    counts = torch.bincount(targets)
    return 1.0 / counts[targets].double()


def sampling_weights(config: DataConfig, train: Dataset) -> torch.Tensor | None:
    """The `sample_weights` of `build_loader` for the training split `train`: None for
    `config.sampler` "shuffle", `balanced_sample_weights` of its targets for "balanced"."""
    if config.sampler == "shuffle":
        return None
    return balanced_sample_weights(class_targets(train))


def inverse_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """float32 (C,) w_c = N / (C' n_c) from the per-class counts (C,), N their sum and C' the
    number of classes present (scikit-learn's `compute_class_weight("balanced")`): the items of
    every class then weigh the same in total, and the weights average 1 over the items. A class
    absent from the counts gets 0 (it has no item to weigh)."""
    counts = counts.double()
    present = counts > 0
    if not present.any():
        raise ValueError("cannot weight classes by frequency: the training split has no item")
    weights = torch.where(present, counts.sum() / (present.sum() * counts.clamp_min(1)), 0.0)
    return weights.float()


def loss_class_weights(config: DataConfig, datasets: Datasets) -> torch.Tensor | None:
    """The per-class weights (num_classes,) of the training loss (`ClassificationLoss(weight=...)`):
    None for `config.class_weighting` "none", `inverse_frequency_weights` of the training split's
    class counts for "inverse_frequency"."""
    if config.class_weighting == "none":
        return None
    return inverse_frequency_weights(class_counts(datasets.train, datasets.num_classes))
