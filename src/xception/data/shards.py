"""WebDataset tar shards: datasets too large for a directory of small files, read as streams.

Layout of a shard directory: `train-000000.tar`, ..., `val-000000.tar`, ... and `dataset.json`
({"class_names", "multilabel", "class_weights", "splits": {split: {"shards", "samples"}}}). Each
sample of a shard is `<key>.png` (8-bit grayscale or RGB) with `<key>.cls` (the class index) or, for
multi-label data, `<key>.json` ({"labels": [class indices]}).

Reading splits the shards first over the ranks of torch.distributed (or the RANK and WORLD_SIZE
environment variables that torchrun sets), then over DataLoader workers, with webdataset's splitters:
each shard is read by exactly one (rank, worker). Validation reads every sample exactly once across
all ranks and workers (ranks may hold different counts: gather or sum, never average per rank).
Training repeats the shards and stops each (rank, worker) after num_samples // (world_size *
num_workers) samples, so every rank sees the same number of batches per epoch, as DDP requires;
call `set_epoch` each epoch for a new shard order and shuffle.
"""

from __future__ import annotations

import io
import json
import random
from itertools import count, islice
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from xception.data.bad_images import guard
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.images import UnreadableImageError, load_image, to_pil_image
from xception.data.transforms import photo_transforms

METADATA = "dataset.json"
SPLITS = ("train", "val")
SHUFFLE_BUFFER = 1000  # samples held in memory per worker for the training shuffle


def write_shards(
    datasets: Datasets, directory: str | Path, *, shard_size: int, batch_size: int = 256
) -> Path:
    """Write the map-style train and val splits of `datasets` as tar shards of `shard_size` samples.

    Images are stored as 8-bit PNG from the items (build `datasets` with augment=False: the items are
    stored as they come). Returns the directory, which `build_datasets` reads with source "webdataset".
    Write at least world_size * num_workers shards per split for training.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 sample, got {shard_size}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split in SPLITS:
        dataset = getattr(datasets, split)
        if isinstance(dataset, IterableDataset):
            raise ValueError(
                f"write_shards needs map-style datasets; the {split} split is an IterableDataset"
            )
        written = 0
        with wds.ShardWriter(str(directory / f"{split}-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
                for image, target in zip(images, targets, strict=True):
                    sample = {"__key__": f"{written:09d}", "png": to_pil_image(image)}
                    if datasets.multilabel:
                        sample["json"] = {"labels": target.nonzero()[:, 0].tolist()}
                    else:
                        sample["cls"] = int(target)
                    sink.write(sample)
                    written += 1
        shards = sorted(path.name for path in directory.glob(f"{split}-*.tar"))
        splits[split] = {"shards": shards, "samples": written}
    weights = None if datasets.class_weights is None else datasets.class_weights.tolist()
    metadata = {
        "class_names": datasets.class_names,
        "multilabel": datasets.multilabel,
        "class_weights": weights,
        "splits": splits,
    }
    (directory / METADATA).write_text(json.dumps(metadata, indent=1) + "\n")
    return directory


class ShardedImages(IterableDataset):
    """Items (image float32 (C, S, S) in [-1, 1], target) streamed from tar shards, split per rank and worker.

    num_samples: the split's total over all shards. train: repeat and shuffle (see the module docstring).
    """

    def __init__(
        self,
        shards: list[str],
        *,
        num_samples: int,
        num_classes: int,
        multilabel: bool,
        transform,
        in_channels: int,
        train: bool,
        seed: int,
    ) -> None:
        self.shards = shards
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.transform = transform
        self.in_channels = in_channels
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the shard order and shuffle of this epoch (the same on every rank, as DistributedSampler)."""
        self.epoch = epoch

    def to_item(self, sample: dict) -> tuple[torch.Tensor, int | torch.Tensor]:
        where = f"sample {sample['__key__']} of {sample['__url__']}"
        if "png" not in sample:
            raise UnreadableImageError(where, "the sample has no .png member", "rewrite that shard")
        try:
            image = load_image(io.BytesIO(sample["png"]), in_channels=self.in_channels, name=where)
        except UnreadableImageError as error:
            raise UnreadableImageError(where, error.reason, "rewrite that shard") from None
        if self.multilabel:
            target = torch.zeros(self.num_classes, dtype=torch.float32)
            target[json.loads(sample["json"])["labels"]] = 1.0
            return self.transform(image), target
        return self.transform(image), int(sample["cls"])

    def __iter__(self):
        rank, world_size, worker, num_workers = wds.utils.pytorch_worker_info()
        readers = world_size * num_workers if self.train else world_size
        if len(self.shards) < readers:
            raise ValueError(
                f"{len(self.shards)} shards cannot feed {world_size} ranks"
                + (f" x {num_workers} workers" if self.train else "")
                + ": write at least that many shards (a smaller shard_size) or use fewer workers"
            )
        if not self.train:
            yield from map(guard(self.to_item), self.stream(self.shards))
            return
        # Training: passes over the shards, each in a new order (the same on every rank, so the rank
        # split stays disjoint), until this reader's share of an epoch is reached.
        quota = self.num_samples // readers
        stream_seed = ((self.seed * 1_000_003 + self.epoch) * 1009 + rank) * 101 + worker

        def passes():
            for number in count():
                shards = list(self.shards)
                random.Random((self.seed * 1_000_003 + self.epoch) * 1009 + number).shuffle(shards)
                yield from self.stream(shards)

        shuffled = wds.filters.shuffle(SHUFFLE_BUFFER, seed=stream_seed)(passes())
        yield from islice(map(guard(self.to_item), shuffled), quota)

    @staticmethod
    def stream(shards: list[str]):
        """The raw samples of `shards` that belong to this rank and worker, in shard order."""
        return iter(
            wds.WebDataset(
                shards,
                shardshuffle=False,
                nodesplitter=wds.split_by_node,
                workersplitter=wds.split_by_worker,
                empty_check=False,
            )
        )


def build_webdataset(config: DataConfig) -> Datasets:
    """The shards written by `write_shards` in `config.path`, with the photo preprocessing."""
    directory = Path(config.path)
    metadata_path = directory / METADATA
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"{metadata_path} does not exist: a shard directory is made by xception.data.shards.write_shards"
        )
    metadata = json.loads(metadata_path.read_text())
    class_names = metadata["class_names"]
    transforms = photo_transforms(config)
    splits = {}
    for split in SPLITS:
        shards = [str(directory / name) for name in metadata["splits"][split]["shards"]]
        missing = [path for path in shards if not Path(path).is_file()]
        if missing or not shards:
            raise FileNotFoundError(f"{directory}: the {split} shards {missing[:3] or '(none)'} are missing")
        splits[split] = ShardedImages(
            shards,
            num_samples=metadata["splits"][split]["samples"],
            num_classes=len(class_names),
            multilabel=metadata["multilabel"],
            transform=getattr(transforms, split),
            in_channels=config.in_channels,
            train=split == "train",
            seed=config.seed,
        )
    weights = metadata.get("class_weights")
    return Datasets(
        train=splits["train"],
        val=splits["val"],
        num_classes=len(class_names),
        class_names=class_names,
        multilabel=metadata["multilabel"],
        class_weights=None if weights is None else torch.tensor(weights, dtype=torch.float32),
        eval_transform=transforms.predict,
    )
