"""WebDataset tar shards: datasets too large for a directory of small files, read as streams.

Layout of a shard directory: `train-000000.tar`, ..., `val-000000.tar`, ... and `dataset.json`
({"class_names", "multilabel", "class_weights", "preparation", "splits": {split: {"shards",
"samples"}}}). Each sample of a shard is the source image, not a prepared one: `<key>.<ext>`, the
bytes of the image file as they were (an image folder or manifest: .jpg, .png, ...) or an 8-bit PNG
of an in-memory image at its own resolution (Fashion-MNIST, mosaics), with `<key>.cls` (the class
index) or, for multi-label data, `<key>.json` ({"labels": [class indices]}). Reading prepares them
as their source does (`preparation`: "photo", the Inception crop / evaluation centre crop; or
"tensor", the in-memory sources' `TensorPipeline`), so the shards evaluate exactly as the data they
were written from. (Storing prepared images would crop them twice: once when writing, once when
reading.)

Validation is split over the ranks of torch.distributed (or the RANK and WORLD_SIZE environment
variables that torchrun sets), then over DataLoader workers, with webdataset's splitters: every
sample is read exactly once across all ranks and workers (ranks may hold different counts: gather or
sum, never average per rank).

Training (`ShardedImages.epoch`, which `xception.data.loader.build_loader` calls) yields whole
micro-batches: each epoch every rank gets the same number of batches (as DDP requires), the shard
order and the shuffle are new each epoch and a function of (seed, epoch), and batch b of an epoch
is a function of (seed, epoch, rank, b, the number of workers), so a run resumed mid-epoch continues
the identical sequence when it has the same number of workers.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import Dataset, IterableDataset
from torchvision.transforms import v2

from xception.atomic_write import write_text_atomic
from xception.data.bad_images import guard
from xception.data.batch_transforms import TensorPipeline
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.images import UnreadableImageError, load_image
from xception.data.in_memory import BatchPreparedImages
from xception.data.loader import seeded_randomness
from xception.data.transforms import photo_transforms
from xception.errors import UserError

METADATA = "dataset.json"
SPLITS = ("train", "val")
SHUFFLE_BUFFER = 1000  # samples held in memory per worker for the training shuffle


IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm")


@dataclass(frozen=True)
class StoredImage:
    """One sample to write: the encoded image, its extension, and its target."""

    data: bytes
    extension: str
    target: int | list[int]  # a class index, or the class indices of a multi-label item


def stored_images(dataset: Dataset, *, multilabel: bool) -> tuple[str, Iterator[StoredImage]]:
    """(the preparation that reading needs, the source images of `dataset`): the files of an image
    folder or manifest as they are ("photo"), the uint8 images of an in-memory source as PNG ("tensor")."""
    if isinstance(dataset, BatchPreparedImages):
        return "tensor", _in_memory_images(dataset, multilabel=multilabel)
    if hasattr(dataset, "samples"):  # torchvision's ImageFolder: (path, class index) pairs
        files = ((Path(path), int(target)) for path, target in dataset.samples)
    elif hasattr(dataset, "paths") and hasattr(dataset, "labels"):  # xception.data.manifest.ManifestImages
        files = ((Path(path), list(labels)) for path, labels in zip(dataset.paths, dataset.labels, strict=True))
    else:
        raise ValueError(f"write_shards stores source images, and a {type(dataset).__name__} has none to give "
                         "(an image folder, a manifest or an in-memory source has)")
    return "photo", (StoredImage(path.read_bytes(), path.suffix.lower().lstrip("."), target) for path, target in files)


def _in_memory_images(dataset: BatchPreparedImages, *, multilabel: bool, chunk: int = 256) -> Iterator[StoredImage]:
    from PIL import Image

    for begin in range(0, len(dataset), chunk):
        index = torch.arange(begin, min(begin + chunk, len(dataset)))
        for pixels, target in zip(dataset.raw_images(index), dataset.targets[index], strict=True):
            buffer = io.BytesIO()
            Image.fromarray(pixels.numpy()).save(buffer, format="PNG")
            label = target.nonzero()[:, 0].tolist() if multilabel else int(target)
            yield StoredImage(buffer.getvalue(), "png", label)


def write_shards(datasets: Datasets, directory: str | Path, *, shard_size: int) -> Path:
    """Write the map-style train and val splits of `datasets` as tar shards of `shard_size` samples,
    each sample its source image (see the module docstring). Returns the directory, which
    `build_datasets` reads with source "webdataset". Write at least world_size * num_workers shards
    per split for training."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 sample, got {shard_size}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    splits, preparations = {}, set()
    for split in SPLITS:
        dataset = getattr(datasets, split)
        if isinstance(dataset, IterableDataset):
            raise ValueError(f"write_shards needs map-style datasets; the {split} split is an IterableDataset")
        preparation, images = stored_images(dataset, multilabel=datasets.multilabel)
        preparations.add(preparation)
        written = 0
        with wds.ShardWriter(str(directory / f"{split}-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for image in images:
                sample = {"__key__": f"{written:09d}", image.extension: image.data}
                if datasets.multilabel:
                    sample["json"] = json.dumps({"labels": image.target}).encode()
                else:
                    sample["cls"] = str(image.target).encode()
                sink.write(sample)
                written += 1
        shards = sorted(path.name for path in directory.glob(f"{split}-*.tar"))
        splits[split] = {"shards": shards, "samples": written}
    (preparation,) = preparations
    weights = None if datasets.class_weights is None else datasets.class_weights.tolist()
    metadata = {"class_names": datasets.class_names, "multilabel": datasets.multilabel, "class_weights": weights,
                "preparation": preparation, "splits": splits}
    if preparation == "tensor":  # what `predict` resizes a photo to, as the in-memory source does
        metadata["source_size"] = list(datasets.val.raw_images(torch.tensor([0])).shape[-2:])
    write_text_atomic(directory / METADATA, json.dumps(metadata, indent=1) + "\n")
    return directory


class StoredGrayscaleInput:
    """A stored in-memory image (PIL, grayscale, at its source size) -> the model input, through a
    `TensorPipeline` as the in-memory source prepares it (augmenting or not)."""

    def __init__(self, pipeline: TensorPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, image) -> torch.Tensor:
        return self.pipeline(v2.functional.pil_to_tensor(image)[None])[0]


@dataclass(frozen=True)
class SampleReader:
    """A raw shard sample -> an item (image float32 (C, S, S) in [-1, 1], target)."""

    num_classes: int
    multilabel: bool
    transform: object
    in_channels: int

    def __call__(self, sample: dict) -> tuple[torch.Tensor, int | torch.Tensor]:
        where = f"sample {sample['__key__']} of {sample['__url__']}"
        extension = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        if extension is None:
            raise UnreadableImageError(where, "the sample has no image member", "rewrite that shard")
        try:
            image = load_image(io.BytesIO(sample[extension]), in_channels=self.in_channels, name=where)
        except UnreadableImageError as error:
            raise UnreadableImageError(where, error.reason, "rewrite that shard") from None
        if self.multilabel:
            target = torch.zeros(self.num_classes, dtype=torch.float32)
            target[json.loads(sample["json"])["labels"]] = 1.0
            return self.transform(image), target
        return self.transform(image), int(sample["cls"])


class TooFewShardsError(UserError, ValueError):
    """Fewer shards than readers (ranks, or ranks x DataLoader workers in training)."""


def _stream(shards: list[str], *, split: bool) -> Iterator[dict]:
    """The raw samples of `shards` in order; `split`: only those of this rank and worker (webdataset's splitters)."""
    return iter(wds.WebDataset(shards, shardshuffle=False, empty_check=False,
                               nodesplitter=wds.split_by_node if split else None,
                               workersplitter=wds.split_by_worker if split else None))


class ShardedImages(IterableDataset):
    """Items (image float32 (C, S, S) in [-1, 1], target) streamed from tar shards.

    Iterating gives this rank's and worker's share of every sample once (validation). `len()` is
    the split's sample count over all shards (what an epoch means); `epoch(...)` is the training
    stream of one epoch.
    """

    def __init__(self, shards: list[str], *, num_samples: int, read: SampleReader, seed: int) -> None:
        self.shards, self.num_samples, self.read, self.seed = shards, num_samples, read, seed

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        rank, world_size, _, _ = wds.utils.pytorch_worker_info()
        if len(self.shards) < world_size:
            raise TooFewShardsError(f"{len(self.shards)} shards cannot feed {world_size} ranks: write at least that many "
                             "shards (a smaller shard_size)")
        yield from map(guard(self.read), _stream(self.shards, split=True))

    def epoch(self, epoch: int, *, batch_size: int, num_batches: int, start_batch: int = 0) -> ShardEpoch:
        """This rank's training micro-batches b = start_batch, ..., num_batches - 1 of `epoch`."""
        return ShardEpoch(self, epoch=epoch, batch_size=batch_size, num_batches=num_batches, start_batch=start_batch)


class ShardEpoch(IterableDataset):
    """One epoch of training micro-batches (lists of items) for this rank, as `ShardedImages.epoch` says.

    With K DataLoader workers, the loader takes batches from the workers in turn, so batch b comes
    from worker b mod K. Worker w of a loader that starts at batch `start_batch` plays the part of
    worker (w + start_batch) mod K of the loader that started at 0: it reads that worker's shards,
    skips the batches that worker made before `start_batch` (undecoded), and makes the rest. Each
    batch's augmentation is seeded from (seed, epoch, rank, b).
    """

    def __init__(self, source: ShardedImages, *, epoch: int, batch_size: int, num_batches: int,
                 start_batch: int) -> None:
        self.source, self.epoch = source, epoch
        self.batch_size, self.num_batches, self.start_batch = batch_size, num_batches, start_batch

    def __iter__(self):
        rank, world_size, worker, num_workers = wds.utils.pytorch_worker_info()
        readers, shards, seed = world_size * num_workers, self.source.shards, self.source.seed
        if len(shards) < readers:
            raise TooFewShardsError(f"{len(shards)} shards cannot feed {world_size} ranks x {num_workers} workers: write "
                             "at least that many shards (a smaller shard_size) or use fewer workers")
        role = (worker + self.start_batch) % num_workers
        reader = rank * num_workers + role
        epoch_seed = seed * 1_000_003 + self.epoch

        def passes():  # over this reader's shards, each pass in a new order (the same on every rank)
            for number in count():
                order = list(shards)
                random.Random(epoch_seed * 1009 + number).shuffle(order)
                yield from _stream(order[reader::readers], split=False)

        samples = wds.filters.shuffle(SHUFFLE_BUFFER, seed=(epoch_seed * 1009 + rank) * 101 + role)(passes())
        done = len(range(role, self.start_batch, num_workers))  # batches this role made before start_batch
        samples = islice(samples, done * self.batch_size, None)
        read = guard(self.source.read)
        for batch in range(self.start_batch + (role - self.start_batch) % num_workers, self.num_batches, num_workers):
            with seeded_randomness((epoch_seed * 1009 + rank) * 1_000_003 + batch):
                yield [read(sample) for sample in islice(samples, self.batch_size)]


def build_webdataset(config: DataConfig) -> Datasets:
    """The shards written by `write_shards` in `config.path`, prepared as their source prepares them."""
    directory = Path(config.path)
    metadata_path = directory / METADATA
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"{metadata_path} does not exist: a shard directory is made by xception.data.shards.write_shards"
        )
    metadata = json.loads(metadata_path.read_text())
    class_names = metadata["class_names"]
    transforms, channels = _transforms(config, metadata)
    splits = {}
    for split in SPLITS:
        shards = [str(directory / name) for name in metadata["splits"][split]["shards"]]
        missing = [path for path in shards if not Path(path).is_file()]
        if missing or not shards:
            raise FileNotFoundError(f"{directory}: the {split} shards {missing[:3] or '(none)'} are missing")
        read = SampleReader(num_classes=len(class_names), multilabel=metadata["multilabel"],
                            transform=transforms[split], in_channels=channels)
        splits[split] = ShardedImages(shards, num_samples=metadata["splits"][split]["samples"], read=read,
                                      seed=config.seed)
    weights = metadata.get("class_weights")
    return Datasets(
        train=splits["train"],
        val=splits["val"],
        num_classes=len(class_names),
        class_names=class_names,
        multilabel=metadata["multilabel"],
        class_weights=None if weights is None else torch.tensor(weights, dtype=torch.float32),
    )


def _transforms(config: DataConfig, metadata: dict) -> tuple[dict[str, object], int]:
    """The train and val preparations of a shard directory, and the channels images decode to."""
    preparation = metadata.get("preparation")
    if preparation == "photo":
        photo = photo_transforms(config)
        return {"train": photo.train, "val": photo.val}, config.in_channels
    if preparation != "tensor":
        raise ValueError(f"{METADATA} has preparation {preparation!r}: these shards were written by an earlier "
                         "version (prepared images, cropped again when read); write them again with `xception data export`")
    def pipeline(augment: bool) -> TensorPipeline:
        return TensorPipeline(image_size=config.image_size, in_channels=config.in_channels, augment=augment,
                              padding=config.crop_padding, erase_probability=config.erase_probability if augment else 0.0)

    return {"train": StoredGrayscaleInput(pipeline(config.augment)), "val": StoredGrayscaleInput(pipeline(False))}, 1
