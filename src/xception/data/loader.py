"""DataLoaders for training and evaluation, on one process or many.

Training order depends only on (seed, epoch, global batch size), never on the number of
processes: each epoch is one random permutation cut into global batches, and process r of W takes
the r-th contiguous slice of every global batch (then cuts it into accumulation micro-batches).
So 2 processes x 64 images and 1 process x 2 micro-batches of 64 see exactly the same images in
the same groups, which is what makes distributed and resumed runs reproducible.

Augmentation is exact too: a training batch's random draws (crops, flips, erasing) are a function
of (seed, epoch, its first index) (`SeededAugmentation`), not of which DataLoader worker prepares
it or of how many batches that worker prepared before. So a run resumed in the middle of an epoch,
with any number of workers, continues the identical sample and augmentation sequence.

The balanced sampler (`sample_weights`) keeps all of this: each epoch draws `size` items with
replacement from the weights with a generator seeded by (seed, epoch) alone, and the batches cut
that draw as they cut a permutation. Augmentation is then seeded by an item's position in the draw,
not by which image it is, so an image drawn twice in an epoch gets two different augmentations.

Evaluation is sharded exactly: process r takes examples r, r + W, r + 2W, ...; no example is
padded or repeated, so counts summed over processes equal the data set size.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from xception.data.bad_images import BadImageRecord, CheckedLoader, GuardedImages, checked_loader


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


class Resampled(Dataset):
    """`dataset` seen through `indices`: item p is dataset[indices[p]] (repeats allowed)."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor) -> None:
        self.dataset, self.indices = dataset, indices.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        return self.dataset[self.indices[position]]

    def __getitems__(self, positions: list[int]) -> list:
        indices = [self.indices[p] for p in positions]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)
        return [self.dataset[i] for i in indices]


def weighted_draw(weights: torch.Tensor, *, seed: int, epoch: int) -> torch.Tensor:
    """int64 (N,) indices of one epoch, drawn with replacement in proportion to `weights` (N,),
    a function of (seed, epoch) and the weights only (the same on every process and on resume)."""
    if weights.ndim != 1 or not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("sample weights must be a 1-D tensor of finite values >= 0, not all 0")
    # A different stream from the permutation's, so that balanced and shuffled runs do not share draws.
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7919 + 1)
    return torch.multinomial(weights.double(), len(weights), replacement=True, generator=generator)


class SeededAugmentation(Dataset):
    """A map-style training set whose random augmentation of a batch is a function of (seed, epoch,
    the batch's first index): torch's, NumPy's and Python's generators are seeded from them for
    the batch and restored after, so the caller's random streams (dropout, in the main process
    when there are no workers) are untouched. Within an epoch every index occurs once, so every
    batch gets its own draws. A dataset with `__getitems__` (a batch prepared at once) is seeded
    once per batch; any other once per item, from its index."""

    def __init__(self, dataset: Dataset, *, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def seed_of(self, index: int) -> int:
        return ((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + index) % 2**63

    def __getitem__(self, index: int):
        with seeded_randomness(self.seed_of(index)):
            return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list:
        if not hasattr(self.dataset, "__getitems__"):
            return [self[i] for i in indices]
        with seeded_randomness(self.seed_of(indices[0])):
            return self.dataset.__getitems__(indices)


@contextlib.contextmanager
def seeded_randomness(seed: int):
    """Seed torch's, NumPy's and Python's generators for the block; restore them after."""
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


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
    sample_weights: torch.Tensor | None = None,
) -> CheckedLoader:
    """A DataLoader of `batch_size`-image batches for this process, wrapped in a `CheckedLoader`
    that raises or records its unreadable images in this process (`bad_images`; None: raise at the
    first, as `--bad-images error` does). Skipped images leave an evaluation batch shorter; a
    training batch is filled up with repeats of its readable images (`CheckedLoader`).

    Training (map-style data): `GlobalBatchSampler` over `global_batch` images per step, this
    process taking `global_batch / world_size` of them in batches of `batch_size`. Evaluation:
    `ShardSampler`. WebDataset shards split themselves per rank and worker; for training, their
    `epoch(...)` gives this process's micro-batches of the epoch from the same global-batch
    arithmetic (`global_batch / (world_size x batch_size)` micro-batches per step).
    `sample_weights` (training, map-style data): float (len(dataset),) weights of a draw with
    replacement per epoch (`weighted_draw`; see `xception.data.balance.sampling_weights`) in place
    of the permutation; the epoch keeps len(dataset) items.
    Training augmentation is seeded per batch (`SeededAugmentation`); the workers' own seeds come
    from (seed, epoch, rank). Make one loader per epoch (workers are not persistent; their
    start-up is small next to an epoch).
    """
    iterable = isinstance(dataset, IterableDataset)
    sampler: Sampler[int] | None = None
    if sample_weights is not None and (iterable or not training):
        raise ValueError("sample weights draw a map-style training set; shards and evaluation read every item once")
    if iterable and training:
        global_batch = global_batch or batch_size * world_size
        per_step = global_batch // (world_size * batch_size)
        dataset = dataset.epoch(epoch, batch_size=batch_size, num_batches=len(dataset) // global_batch * per_step,
                                start_batch=start_batch * per_step)
        batch_size = None  # the epoch stream yields whole micro-batches
    if not iterable:
        if training:
            if sample_weights is not None:
                if len(sample_weights) != len(dataset):
                    raise ValueError(f"{len(sample_weights)} sample weights for {len(dataset)} items")
                dataset = Resampled(dataset, weighted_draw(sample_weights, seed=seed, epoch=epoch))
            # Guarded inside: the seeding wraps whole batches, and a bad file still becomes a BadImage.
            dataset = SeededAugmentation(GuardedImages(dataset), seed=seed, epoch=epoch)
            sampler = GlobalBatchSampler(
                len(dataset),
                global_batch=global_batch or batch_size * world_size,
                rank=rank,
                world_size=world_size,
                seed=seed,
                epoch=epoch,
                shuffle=sample_weights is None,  # a draw with replacement comes in random order already
                start_batch=start_batch,
            )
        else:
            sampler = ShardSampler(len(dataset), rank=rank, world_size=world_size)
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 4099 + rank)
    return checked_loader(
        dataset,
        bad_images=bad_images,
        refill=training,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,  # the training sampler only yields full global batches already
        generator=generator,
        prefetch_factor=4 if num_workers > 0 else None,
    )
