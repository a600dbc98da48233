"""What a built dataset holds, and how fast it loads: for `xception data inspect` and the data benchmark."""

from __future__ import annotations

import time
from typing import Any

from torch.utils.data import IterableDataset

from xception.data.bad_images import checked_loader
from xception.data.datasets import Datasets


def split_size(dataset) -> int:
    """Items in a split: len() of a map-style dataset, `num_samples` of a shard stream."""
    return dataset.num_samples if isinstance(dataset, IterableDataset) else len(dataset)


def summarize(datasets: Datasets) -> dict[str, Any]:
    """Split sizes, classes, class weights, and the shape, dtype and value range of one validation item."""
    image, target = next(iter(checked_loader(datasets.val, bad_images=None, batch_size=1)))
    return {
        "train": split_size(datasets.train),
        "val": split_size(datasets.val),
        "num_classes": datasets.num_classes,
        "class_names": datasets.class_names,
        "multilabel": datasets.multilabel,
        "class_weights": None
        if datasets.class_weights is None
        else [round(w, 4) for w in datasets.class_weights.tolist()],
        "image_shape": list(image.shape[1:]),
        "image_dtype": str(image.dtype).removeprefix("torch."),
        "image_range": [round(image.min().item(), 4), round(image.max().item(), 4)],
        "target_shape": list(target.shape[1:]),
    }


def loading_rate(dataset, *, batch_size: int, batches: int, num_workers: int) -> float:
    """Training items per second delivered by a DataLoader (shuffled, augmented as built), after one
    warm-up batch; `batches` timed batches, fewer if the split runs out."""
    loader = checked_loader(
        dataset,
        bad_images=None,
        batch_size=batch_size,
        shuffle=not isinstance(dataset, IterableDataset),
        num_workers=num_workers,
        drop_last=True,
    )
    iterator = iter(loader)
    next(iterator)
    start, count = time.perf_counter(), 0
    for _, (images, _) in zip(range(batches), iterator, strict=False):
        count += images.shape[0]
    if count == 0:
        raise ValueError(f"the split holds fewer than 2 batches of {batch_size}: lower the batch size")
    return count / (time.perf_counter() - start)
