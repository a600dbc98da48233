"""`xception data`: inspect and export, on Fashion-MNIST mosaics and a small image folder."""

import json

import numpy as np
import pytest
from PIL import Image

from xception.cli import main
from xception.data import DataConfig, build_datasets
from xception.data import fashion_mnist as fm


def test_cli_data_inspect_reports_sizes_and_range(tmp_path, capsys):
    for split, count in (("train", 3), ("val", 2)):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = np.random.default_rng(i).integers(0, 256, (20, 30, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{i}.png")
    argv = ["data", "inspect", "--source", "imagefolder", "--data", str(tmp_path), "--image-size", "16"]
    assert main([*argv, "--batch-size", "2", "--batches", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["train"], summary["val"], summary["class_names"]) == (6, 4, ["a", "b"])
    assert (
        summary["image_shape"] == [3, 16, 16]
        and -1 <= summary["image_range"][0] < summary["image_range"][1] <= 1
    )
    assert summary["train_items_per_second"] > 0


def test_cli_data_bad_input_is_one_clear_line(tmp_path, capsys):
    argv = ["data", "inspect", "--source", "imagefolder", "--data", str(tmp_path), "--image-size", "16"]
    assert main(argv) == 2
    assert f"{tmp_path / 'train'} does not exist" in capsys.readouterr().err


@pytest.mark.usefixtures("fashion_mnist")
def test_cli_data_export_mosaic_shards_read_back(tmp_path, capsys):
    sizes = ["--mosaic-train-size", "8", "--mosaic-val-size", "6"]
    argv = ["data", "export", "--source", "mosaic", "--image-size", "56", "--in-channels", "1", *sizes]
    assert main([*argv, "--to", str(tmp_path), "--format", "shards", "--shard-size", "4"]) == 0
    assert "wrote 8 training and 6 validation items" in capsys.readouterr().out
    shards = build_datasets(
        DataConfig(
            source="webdataset",
            path=str(tmp_path),
            image_size=56,
            in_channels=1,
            crop_fraction=1.0,
            augment=False,
        )
    )
    mosaic = build_datasets(
        DataConfig(
            source="mosaic",
            path=None,
            image_size=56,
            in_channels=1,
            mosaic_train_size=8,
            mosaic_val_size=6,
            augment=False,
        )
    )
    assert shards.multilabel and shards.class_weights.tolist() == pytest.approx(mosaic.class_weights.tolist())
    for (image, target), i in zip(shards.val, range(6), strict=True):
        assert (target == mosaic.val[i][1]).all() and (image - mosaic.val[i][0]).abs().max() < 1e-6


def test_cli_data_fetch_prints_the_directory_it_found(tmp_path, monkeypatch, capsys):
    from test_data_fashion_mnist import fake_fashion_mnist

    fake_fashion_mnist(tmp_path)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path)
    assert main(["data", "fetch"]) == 0
    assert capsys.readouterr().out.strip() == f"Fashion-MNIST: {tmp_path}"
