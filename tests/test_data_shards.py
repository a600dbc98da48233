"""WebDataset shards: writing any Datasets and reading them back, split disjointly over ranks and workers."""

import pytest
import torch
from torch.utils.data import DataLoader

from xception.data import DataConfig, Datasets, build_datasets
from xception.data.batch_transforms import TensorPipeline
from xception.data.in_memory import InMemoryImages
from xception.data.loader import build_loader
from xception.data.shards import write_shards

SIZE = 12


def numbered_datasets(train: int, val: int, *, multilabel: bool) -> Datasets:
    """Image i of a split is the constant i (so it can be recognised after the trip); target from i."""

    def split(count: int, offset: int) -> InMemoryImages:
        values = torch.arange(offset, offset + count, dtype=torch.uint8)
        images = values[:, None, None].expand(count, SIZE, SIZE).contiguous()
        if multilabel:
            targets = torch.stack([(values.long() >> bit) & 1 for bit in range(3)], dim=1).float()
        else:
            targets = values.long() % 3
        return InMemoryImages(images, targets, pipeline=pipeline)

    pipeline = TensorPipeline(image_size=SIZE, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    return Datasets(
        train=split(train, 0),
        val=split(val, 100),
        num_classes=3,
        class_names=["a", "b", "c"],
        multilabel=multilabel,
        class_weights=torch.tensor([0.5, 0.25, 0.25]) if multilabel else None,
    )


def read_config(directory, **overrides):
    return DataConfig(
        **{
            "source": "webdataset",
            "path": str(directory),
            "image_size": SIZE,
            "in_channels": 1,
            "crop_fraction": 1.0,
            "augment": False,
            **overrides,
        }
    )


def identities(items) -> list[int]:
    """The constant pixel value of each item's image: which sample it was."""
    return [round((image[0, 0, 0].item() + 1) * 127.5) for image, _ in items]


@pytest.mark.parametrize("multilabel", [False, True])
def test_shards_round_trip_items_and_metadata(tmp_path, multilabel):
    original = numbered_datasets(10, 7, multilabel=multilabel)
    write_shards(original, tmp_path, shard_size=4)
    assert sorted(p.name for p in tmp_path.glob("val-*.tar")) == ["val-000000.tar", "val-000001.tar"]
    datasets = build_datasets(read_config(tmp_path))
    assert datasets.class_names == ["a", "b", "c"] and datasets.multilabel == multilabel
    assert (datasets.class_weights is None) == (not multilabel)
    items = list(datasets.val)
    assert identities(items) == list(range(100, 107))
    for (image, target), i in zip(items, range(7), strict=True):
        expected_image, expected_target = original.val[i]
        assert torch.allclose(image, expected_image, atol=1e-6)
        if multilabel:
            assert torch.equal(target, expected_target)
        else:
            assert target == expected_target


def test_shards_split_disjointly_over_ranks_and_workers(tmp_path, monkeypatch):
    write_shards(numbered_datasets(24, 13, multilabel=False), tmp_path, shard_size=3)  # 5 val shards
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        datasets = build_datasets(read_config(tmp_path))
        loader = DataLoader(datasets.val, batch_size=None, num_workers=2)
        seen.append(identities(loader))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(100, 113))  # every sample exactly once


def _epoch_identities(directory, *, rank: int, epoch: int, num_workers: int, start_batch: int = 0) -> list[list[int]]:
    """The samples of each micro-batch (3 images, global batch 6 over 2 ranks) of one training epoch."""
    train = build_datasets(read_config(directory)).train
    loader = build_loader(train, batch_size=3, training=True, rank=rank, world_size=2, seed=0, epoch=epoch,
                          num_workers=num_workers, pin_memory=False, global_batch=6, start_batch=start_batch)
    return [[round((x + 1) * 127.5) for x in images[:, 0, 0, 0].tolist()] for images, _ in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_shards_training_epochs_are_equal_per_rank_reshuffled_and_resumable(tmp_path, monkeypatch, num_workers):
    write_shards(numbered_datasets(25, 4, multilabel=False), tmp_path, shard_size=5)  # 5 train shards
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        first = _epoch_identities(tmp_path, rank=rank, epoch=0, num_workers=num_workers)
        assert len(first) == 25 // 6 and all(len(batch) == 3 for batch in first)  # the same on every rank
        assert _epoch_identities(tmp_path, rank=rank, epoch=0, num_workers=num_workers) == first
        assert _epoch_identities(tmp_path, rank=rank, epoch=1, num_workers=num_workers) != first
        # A resume after 2 of the 4 steps continues the identical sequence.
        assert _epoch_identities(tmp_path, rank=rank, epoch=0, num_workers=num_workers, start_batch=2) == first[2:]
        assert len(set(sum(first, []))) > 6  # a shuffle over the shards, not one repeated batch


def test_shards_too_few_for_the_ranks_says_so(tmp_path, monkeypatch):
    write_shards(numbered_datasets(4, 4, multilabel=False), tmp_path, shard_size=4)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="1 shards cannot feed 2 ranks"):
        list(build_datasets(read_config(tmp_path)).val)


def test_shards_missing_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json does not exist.*write_shards"):
        build_datasets(read_config(tmp_path))
