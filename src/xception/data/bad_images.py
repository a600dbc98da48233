"""Unreadable images met while loading a split: stop at the first (`error`, the default) or leave
them out (`skip`), in the main process either way.

A DataLoader worker that raises sends the main process only the error's type and a formatted
traceback, so the file's name would come back buried in 30 lines of someone else's stack. Instead,
`GuardedImages` (map-style datasets) and `guard` (streams) turn an `UnreadableImageError` into a
`BadImage` item, `collate_readable` puts those aside from the batch, and `CheckedLoader`, in the
main process, raises or records them. Under `skip`, each bad file is logged once (not once per
epoch), the count goes into the metrics, and more than `max_fraction` of the split stops the run:
a failing disk is not trained on silently. Evaluation leaves the bad images out; training fills
its batch up with repeats of the readable ones, so batch sizes stay equal across processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from xception.data.config import BAD_IMAGE_POLICIES, BadImagePolicy
from xception.data.images import UnreadableImageError
from xception.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadImage:
    """An item that could not be read, as it travels from a worker: where it is and why."""

    path: str
    reason: str
    advice: str


@dataclass(frozen=True)
class WorkerFailure:
    """A `UserError` raised while a worker streamed its items, as it travels to the main process
    (pickled: its message and type, not its traceback)."""

    error: UserError


class TooManyBadImagesError(UserError):
    """More of a split unreadable than `--bad-images skip` tolerates."""


def guard(read: Callable[..., Any]) -> Callable[..., Any]:
    """`read`, giving a `BadImage` instead of raising `UnreadableImageError`, and a `WorkerFailure`
    instead of raising any other `UserError`."""

    def guarded(*args):
        try:
            return read(*args)
        except UnreadableImageError as error:
            return BadImage(error.path, error.reason, error.advice)
        except UserError as error:
            return WorkerFailure(error)

    return guarded


class GuardedImages(Dataset):
    """A map-style dataset whose unreadable items are `BadImage`s. Batched datasets (`__getitems__`,
    the in-memory sources) read no files and pass through whole."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return guard(self.dataset.__getitem__)(index)

    def __getitems__(self, indices: list[int]) -> list:
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)
        return [self[index] for index in indices]


class GuardedStream(IterableDataset):
    """An iterable dataset whose user errors (too few shards for the workers, ...) end the stream
    as a `WorkerFailure` item, so the main process raises them, not a worker's stack."""

    def __init__(self, dataset: IterableDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator:
        try:
            yield from self.dataset
        except UserError as error:
            yield WorkerFailure(error)


def collate_readable(items: list) -> tuple[Any, list[BadImage | WorkerFailure]]:
    """(the default collation of the readable items, or None when there are none; the `BadImage`s
    and `WorkerFailure`s). `items` is a list, or one `WorkerFailure` where the stream batches itself."""
    if isinstance(items, WorkerFailure):
        return None, [items]
    bad = [item for item in items if isinstance(item, (BadImage, WorkerFailure))]
    readable = [item for item in items if not isinstance(item, (BadImage, WorkerFailure))]
    return (default_collate(readable) if readable else None), bad


class BadImageRecord:
    """What one split's loaders met: raises at the first bad image under "error"; under "skip" logs
    each bad file once and raises when more than `max_fraction` of `split_size` items are bad.
    `paths` maps each bad file to its reason (this process's, see `gather`)."""

    def __init__(self, policy: BadImagePolicy, *, split: str, split_size: int, max_fraction: float) -> None:
        if policy not in BAD_IMAGE_POLICIES:
            raise UserError(f"--bad-images must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {policy!r}")
        if not 0.0 <= max_fraction <= 1.0:
            raise UserError(f"the fraction of bad images allowed must be in [0, 1], got {max_fraction}")
        self.policy, self.split = policy, split
        self.limit = math.ceil(max_fraction * split_size)
        self.max_fraction, self.split_size = max_fraction, split_size
        self.paths: dict[str, str] = {}

    def add(self, bad: list[BadImage]) -> None:
        for item in bad:
            if self.policy == "error":
                raise UnreadableImageError(item.path, item.reason,
                                           f"{item.advice}, or pass --bad-images skip to leave it out")
            if item.path not in self.paths:
                log.warning("skipping unreadable image %s: %s", item.path, item.reason)
                self.paths[item.path] = item.reason
        self.check(len(self.paths))

    def check(self, count: int) -> None:
        """Raise when `count` bad images are more than this split tolerates."""
        if count > self.limit:
            shown = ", ".join(list(self.paths)[:3])
            raise TooManyBadImagesError(
                f"{count} unreadable image(s) in the {self.split} split, more than --bad-images skip allows "
                f"({self.limit}, a fraction {self.max_fraction:g} of {self.split_size}; first: {shown}): check the "
                "disk and the data, or allow more with --bad-image-fraction")

    def gather(self) -> dict[str, str]:
        """The bad files met by all processes, with their reasons (a collective under torch.distributed);
        raises when they are more than the split tolerates."""
        from xception.distributed import all_gather_objects

        merged = {path: reason for paths in all_gather_objects(self.paths) for path, reason in paths.items()}
        self.check(len(merged))
        return merged


class CheckedLoader:
    """Iterates a DataLoader built with `collate_readable`, handing each batch's bad images to
    `record` in the main process. Evaluation (`refill` False) yields the readable part of each
    batch, so every readable image counts once. Training (`refill`) fills the batch up again with
    repeats of its readable images: every step and every process keeps its batch size, which DDP's
    collectives and BatchNorm (a batch of 1 has no variance) need."""

    def __init__(self, loader, record: BadImageRecord, *, refill: bool) -> None:
        self.loader, self.record, self.refill = loader, record, refill

    def __iter__(self) -> Iterator:
        for batch, bad in self.loader:
            for failure in bad:
                if isinstance(failure, WorkerFailure):
                    raise failure.error from None
            self.record.add(bad)
            if batch is None and self.refill:
                raise TooManyBadImagesError(f"all {len(bad)} images of a training batch are unreadable (first: "
                                            f"{bad[0].path}): check the disk and the data")
            if batch is not None:
                yield refilled(batch, len(bad)) if self.refill and bad else batch

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        return self.loader.dataset


def refilled(batch: list, missing: int) -> list:
    """`batch` (a list of tensors of equal length, images and targets) with `missing` more rows:
    repeats of its first rows."""
    size = len(batch[0])
    rows = torch.arange(size + missing) % size
    return [part[rows] for part in batch]


def checked_loader(dataset, *, bad_images: BadImageRecord | None, refill: bool = False, **options) -> CheckedLoader:
    """`DataLoader(dataset, **options)` whose unreadable images reach the main process as `bad_images`
    says (None: raise at the first, as `--bad-images error`); `refill` as in `CheckedLoader`."""
    if bad_images is None:
        bad_images = BadImageRecord("error", split="data", split_size=0, max_fraction=0.0)
    guarded = GuardedStream(dataset) if isinstance(dataset, IterableDataset) else GuardedImages(dataset)
    return CheckedLoader(DataLoader(guarded, collate_fn=collate_readable, **options), bad_images, refill=refill)
