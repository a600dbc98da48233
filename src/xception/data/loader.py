"""DataLoaders for training and evaluation, on one process or many.

Training order depends only on (seed, epoch, global batch size), never on the number of
processes: each epoch is one random permutation cut into global batches, and process r of W takes
the r-th contiguous slice of every global batch (then cuts it into accumulation micro-batches).
So 2 processes x 64 images and 1 process x 2 micro-batches of 64 see exactly the same images in
the same groups, which is what makes distributed and resumed runs reproducible.

Evaluation is sharded exactly: process r takes examples r, r + W, r + 2W, ...; no example is
padded or repeated, so counts summed over processes equal the data set size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from xception.data.bad_images import BadImageRecord, CheckedLoader, checked_loader


class GlobalBatchSampler(Sampler[int]):
    """This process's indices of one epoch: its slice of every full global batch, in order.

    `start_batch` skips the first global batches of the epoch (a resumed run). The last,
    incomplete global batch is dropped so that every optimizer step sees `global_batch` images.
    """

    def __init__(
        self,
        size: int,
        *,
        global_batch: int,
        rank: int,
        world_size: int,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        start_batch: int = 0,
    ) -> None:
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
        if size < global_batch:
            raise ValueError(
                f"the training set has {size} examples, fewer than one batch of {global_batch}; "
                "lower --batch-size"
            )
        self.size, self.global_batch, self.rank, self.world_size = size, global_batch, rank, world_size
        self.seed, self.epoch, self.shuffle, self.start_batch = seed, epoch, shuffle, start_batch

    def batches_per_epoch(self) -> int:
        return self.size // self.global_batch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        share = self.global_batch // self.world_size
        for batch in range(self.start_batch, self.batches_per_epoch()):
            begin = batch * self.global_batch + self.rank * share
            yield from order[begin : begin + share].tolist()

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * (self.global_batch // self.world_size)


class ShardSampler(Sampler[int]):
    """Examples rank, rank + W, rank + 2W, ...: an exact partition of the data set over W processes."""

    def __init__(self, size: int, *, rank: int, world_size: int) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def default_num_workers(world_size: int = 1) -> int:
    """CPUs available to this process, minus one for the training loop itself, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(world_size, 1) - 1))


def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    training: bool,
    rank: int,
    world_size: int,
    seed: int,
    epoch: int = 0,
    num_workers: int,
    pin_memory: bool,
    global_batch: int | None = None,
    start_batch: int = 0,
    bad_images: BadImageRecord | None = None,
) -> CheckedLoader:
    """A DataLoader of `batch_size`-image batches for this process, wrapped in a `CheckedLoader`
    that raises or records its unreadable images in this process (`bad_images`; None: raise at the
    first, as `--bad-images error` does).

    Training (map-style data): `GlobalBatchSampler` over `global_batch` images per step, this
    process taking `global_batch / world_size` of them in batches of `batch_size`. Evaluation:
    `ShardSampler`. An `IterableDataset` (WebDataset shards) splits itself per rank and worker.
    Worker randomness (augmentation) is seeded from (seed, epoch, rank), so an epoch's
    augmentations do not depend on earlier epochs. Make one loader per epoch: workers are not
    persistent, which is what keeps that true (their start-up is small next to an epoch).
    """
    iterable = isinstance(dataset, IterableDataset)
    sampler: Sampler[int] | None = None
    if not iterable:
        if training:
            sampler = GlobalBatchSampler(
                len(dataset),
                global_batch=global_batch or batch_size * world_size,
                rank=rank,
                world_size=world_size,
                seed=seed,
                epoch=epoch,
                start_batch=start_batch,
            )
        else:
            sampler = ShardSampler(len(dataset), rank=rank, world_size=world_size)
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 4099 + rank)
    return checked_loader(
        dataset,
        bad_images=bad_images,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,  # the training sampler only yields full global batches already
        generator=generator,
        prefetch_factor=4 if num_workers > 0 else None,
    )
