"""Fashion-MNIST mosaics: targets match the items placed, layouts follow the seed, and the written
manifest reads back to the same items through the multilabel source."""

import dataclasses

import pytest
import torch

from xception.data import DataConfig, build_datasets
from xception.data import fashion_mnist as fm
from xception.data.batch_transforms import TensorPipeline
from xception.data.manifest import write_multilabel_dataset
from xception.data.mosaic import EMPTY, MosaicImages, class_frequencies, mosaic_layouts


def synthetic_source(count: int = 60, num_classes: int = 5):
    """Item i is a constant image of value i + 1 (never black), of class i % num_classes."""
    images = (torch.arange(count, dtype=torch.uint8) + 1)[:, None, None].expand(count, 28, 28).contiguous()
    return images, torch.arange(count) % num_classes


def test_mosaic_targets_and_pixels_match_the_items_placed():
    images, labels = synthetic_source()
    layouts = mosaic_layouts(labels, count=60, grid=3, skew=1.0, generator=torch.Generator().manual_seed(0))
    pipeline = TensorPipeline(image_size=84, in_channels=1, augment=False, padding=0, erase_probability=0.0)
    mosaics = MosaicImages(images, labels, layouts, grid=3, num_classes=5, pipeline=pipeline)
    raw = mosaics.raw_images(torch.arange(60))
    assert raw.shape == (60, 84, 84)
    for n in range(60):
        expected_classes = set()
        for cell in range(9):
            row, column = divmod(cell, 3)
            tile = raw[n, 28 * row : 28 * row + 28, 28 * column : 28 * column + 28]
            item = int(layouts[n, cell])
            if item == EMPTY:
                assert (tile == 0).all()
            else:
                assert (tile == item + 1).all()
                expected_classes.add(int(labels[item]))
        assert set(mosaics.targets[n].nonzero()[:, 0].tolist()) == expected_classes
        image, target = mosaics[n]
        assert torch.equal(target, mosaics.targets[n]) and target.dtype == torch.float32
        assert torch.allclose(image[0].double(), raw[n].double() / 127.5 - 1, atol=1e-6)


def test_mosaic_layouts_follow_the_seed():
    _, labels = synthetic_source()
    a = mosaic_layouts(labels, count=50, grid=2, skew=1.0, generator=torch.Generator().manual_seed(3))
    b = mosaic_layouts(labels, count=50, grid=2, skew=1.0, generator=torch.Generator().manual_seed(3))
    c = mosaic_layouts(labels, count=50, grid=2, skew=1.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mosaic_layouts_fill_rate_and_class_skew():
    _, labels = synthetic_source(count=100, num_classes=10)
    layouts = mosaic_layouts(
        labels, count=20000, grid=2, skew=1.0, generator=torch.Generator().manual_seed(0)
    )
    filled = layouts != EMPTY
    assert filled.any(dim=1).all()  # never an empty mosaic
    # P(filled) = 1/2 per cell, plus the forced cell of the 1/16 of mosaics that drew none: 0.5 + 1/64.
    assert filled.float().mean().item() == pytest.approx(0.5 + 1 / 64, abs=0.01)
    counts = torch.bincount(labels[layouts[filled]], minlength=10).double()
    expected = 1.0 / torch.arange(1, 11, dtype=torch.float64)  # p(c) ~ 1 / (c + 1)
    assert torch.allclose(counts / counts.sum(), expected / expected.sum(), atol=0.01)
    assert torch.allclose(class_frequencies(4, 0.0), torch.full((4,), 0.25, dtype=torch.float64))


def test_build_mosaic_uses_training_items_for_train_and_test_items_for_val(fashion_mnist):
    config = DataConfig(
        source="mosaic",
        path=None,
        image_size=56,
        in_channels=1,
        mosaic_train_size=30,
        mosaic_val_size=20,
        augment=False,
    )
    datasets = build_datasets(config)
    test_images, _ = fm.load_fashion_mnist(fashion_mnist, "test")
    train_images, _ = fm.load_fashion_mnist(fashion_mnist, "train")
    assert (
        datasets.multilabel
        and datasets.num_classes == 10
        and (len(datasets.train), len(datasets.val)) == (30, 20)
    )
    assert torch.equal(datasets.val.source, test_images) and torch.equal(datasets.train.source, train_images)
    assert torch.allclose(
        datasets.class_weights, datasets.train.targets.sum(0) / datasets.train.targets.sum()
    )
    again = build_datasets(config)
    assert torch.equal(again.train.layouts, datasets.train.layouts) and torch.equal(
        again.val.layouts, datasets.val.layouts
    )


@pytest.mark.usefixtures("fashion_mnist")
@pytest.mark.parametrize("manifest_format", ["jsonl", "csv"])
def test_mosaic_written_as_manifest_reads_back_identically(tmp_path, manifest_format):
    mosaic = build_datasets(
        DataConfig(
            source="mosaic",
            path=None,
            image_size=56,
            in_channels=1,
            mosaic_train_size=24,
            mosaic_val_size=16,
            augment=False,
        )
    )
    write_multilabel_dataset(mosaic, tmp_path, manifest_format=manifest_format)
    assert (tmp_path / f"train.{manifest_format}").is_file() and (tmp_path / "classes.txt").is_file()
    # crop_fraction 1 at the stored size: resize and centre crop are the identity, so items must match.
    manifest = build_datasets(
        DataConfig(
            source="multilabel",
            path=str(tmp_path),
            image_size=56,
            in_channels=1,
            crop_fraction=1.0,
            augment=False,
        )
    )
    assert manifest.class_names == mosaic.class_names and manifest.multilabel
    assert torch.allclose(manifest.class_weights, mosaic.class_weights)
    for split in ("train", "val"):
        ours, theirs = getattr(manifest, split), getattr(mosaic, split)
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            image, target = ours[i]
            expected_image, expected_target = theirs[i]
            assert torch.equal(target, expected_target)
            assert torch.allclose(image, expected_image, atol=1e-6)


def _items(layouts: torch.Tensor) -> set[int]:
    return set(layouts[layouts != EMPTY].tolist())


@pytest.mark.parametrize("source", ["mosaic", "mosaic_masks", "canvas"])
def test_mosaic_val_split_validates_on_held_out_training_items_only(fashion_mnist, source):
    """With val_split the validation mosaics tile only the held-out training items (the cut that
    `stratified_split` makes of the training labels), the training mosaics only the others; the test
    mosaics are those of the config without val_split; and a rebuild cuts the same."""
    from xception.data.mosaic import build_mosaic_split
    from xception.data.split import stratified_split

    base = DataConfig(source=source, path=None, image_size=56, in_channels=1, mosaic_train_size=2000,
                      mosaic_val_size=500, augment=False, seed=5)
    config = dataclasses.replace(base, val_split=0.1)
    datasets = build_datasets(config)
    train, val = (getattr(d, "mosaics", d) for d in (datasets.train, datasets.val))  # MosaicMasks wraps them
    train_images, train_labels = fm.load_fashion_mnist(fashion_mnist, "train")
    assert torch.equal(val.source, train_images) and (len(train), len(val)) == (2000, 500)
    _, held_out = stratified_split(train_labels.tolist(), fraction=0.1, seed=5)
    assert len(held_out) == 6000 and torch.bincount(train_labels[held_out]).tolist() == [600] * 10
    assert _items(val.layouts) <= set(held_out) and not _items(train.layouts) & set(held_out)
    assert len(_items(val.layouts)) > 200 and len(_items(train.layouts)) > 1000  # both really drew
    assert torch.equal(build_mosaic_split(config, "test", augment=False).layouts,
                       build_mosaic_split(base, "test", augment=False).layouts)
    again = build_datasets(config)
    assert torch.equal(getattr(again.val, "mosaics", again.val).layouts, val.layouts)
    with pytest.raises(ValueError, match="need val_split"):
        build_mosaic_split(base, "val", augment=False)


def test_cli_train_val_split_accepts_the_mosaic_sources():
    from xception.cli import build_parser
    from xception.cli.train import build_config

    argv = ["train", "--task", "segmentation", "--dataset", "mosaic_masks", "--val-split", "0.1"]
    data = build_config(build_parser().parse_args(argv)).data
    assert (data.source, data.val_split) == ("mosaic_masks", 0.1)
