"""The ImageNet validation set in both layouts and every ground-truth file: the same images get the
same class indices (those of published weights: the sorted synset order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from xception.data.config import DataConfig
from xception.data.imagenet import open_imagenet_val, read_ground_truth
from xception.imagenet_classes import IMAGENET_WNIDS

LABELS = [3, 999, 0, 3, 512]  # class indices of images 1..5


def config(path, **fields) -> DataConfig:
    return DataConfig(source="imagenet", path=str(path), image_size=32, crop_fraction=0.875, augment=False, **fields)


def write_images(folder, numbers) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        pixels = np.full((40, 48, 3), number * 40, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"ILSVRC2012_val_{number:08d}.JPEG")


def items(dataset) -> list[tuple[float, int]]:
    return sorted((round(float(image.mean()), 3), target) for image, target in (dataset[i] for i in range(len(dataset))))


@pytest.fixture
def flat(tmp_path):
    write_images(tmp_path / "val", range(1, 6))
    return tmp_path


@pytest.fixture
def expected(flat):
    return items(open_imagenet_val(config(flat / "val", ground_truth=str(write_synset_lines(flat)))))


def write_synset_lines(root):
    path = root / "imagenet_2012_validation_synset_labels.txt"
    path.write_text("".join(IMAGENET_WNIDS[label] + "\n" for label in LABELS))
    return path


def test_imagenet_val_synset_folders_give_the_sorted_synset_indices(tmp_path, flat, expected):
    for number, label in enumerate(LABELS, start=1):
        write_images(tmp_path / "synsets" / IMAGENET_WNIDS[label], [number])
    dataset = open_imagenet_val(config(tmp_path / "synsets"))
    assert len(dataset) == 5
    assert items(dataset) == expected
    assert sorted(target for _, target in expected) == sorted(LABELS)


def test_imagenet_val_flat_folder_finds_the_labels_file_above_it(flat, expected):
    write_synset_lines(flat)
    assert items(open_imagenet_val(config(flat))) == expected  # the root above val/ works too
    assert items(open_imagenet_val(config(flat / "val"))) == expected


def test_imagenet_val_reads_the_devkit_ground_truth_through_meta_mat(flat, expected):
    scipy_io = pytest.importorskip("scipy.io")
    devkit = flat / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    # The devkit numbers synsets in its own order (ILSVRC2012_ID), not the sorted one; parents
    # (num_children > 0) follow the 1000 leaves.
    order = np.random.default_rng(0).permutation(1000)
    records = [(int(rank) + 1, IMAGENET_WNIDS[index], 0) for rank, index in enumerate(order)]
    records.append((1001, "n00001740", 5))
    synsets = np.array(records, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    scipy_io.savemat(devkit / "meta.mat", {"synsets": synsets})
    id_of = {index: rank + 1 for rank, index in enumerate(order)}
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{id_of[label]}\n" for label in LABELS))
    (flat / "imagenet_2012_validation_synset_labels.txt").unlink()  # found first otherwise
    assert items(open_imagenet_val(config(flat / "val"))) == expected


def test_imagenet_val_reads_kaggle_and_caffe_label_files(flat, expected):
    kaggle = flat / "LOC_val_solution.csv"
    kaggle.write_text("ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_{n:08d},{IMAGENET_WNIDS[label]} 1 2 30 40\n" for n, label in enumerate(LABELS, start=1)))
    assert items(open_imagenet_val(config(flat / "val", ground_truth=str(kaggle)))) == expected
    caffe = flat / "val.txt"
    caffe.write_text("".join(f"ILSVRC2012_val_{n:08d}.JPEG {label}\n" for n, label in enumerate(LABELS, start=1)))
    assert read_ground_truth(caffe)["ILSVRC2012_val_00000002"] == 999
    assert items(open_imagenet_val(config(flat / "val", ground_truth=str(caffe)))) == expected


def test_imagenet_val_a_subset_of_images_takes_their_own_lines(flat):
    write_synset_lines(flat)
    for number in (1, 2, 4):
        (flat / "val" / f"ILSVRC2012_val_{number:08d}.JPEG").unlink()
    dataset = open_imagenet_val(config(flat / "val"))
    assert [dataset[i][1] for i in range(len(dataset))] == [LABELS[2], LABELS[4]]
    assert isinstance(dataset[0][0], torch.Tensor) and dataset[0][0].shape == (3, 32, 32)


def test_imagenet_val_errors_name_the_problem(tmp_path, flat):
    with pytest.raises(FileNotFoundError, match=r"no ground-truth file was found.*--ground-truth"):
        open_imagenet_val(config(flat / "val"))
    write_images(tmp_path / "odd" / "n99999999", [1])
    with pytest.raises(ValueError, match=r"n99999999 is not one of ImageNet-1k's 1000 synsets"):
        open_imagenet_val(config(tmp_path / "odd"))
    (flat / "labels.txt").write_text("n01440764\n")
    with pytest.raises(ValueError, match=r"has no label for ILSVRC2012_val_00000002.JPEG"):
        open_imagenet_val(config(flat / "val", ground_truth=str(flat / "labels.txt")))
    (flat / "ids.txt").write_text("5\n6\n")
    with pytest.raises(FileNotFoundError, match=r"ILSVRC2012_IDs.*meta.mat"):
        read_ground_truth(flat / "ids.txt")
