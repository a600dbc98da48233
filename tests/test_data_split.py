"""`val_split`: one folder of class folders cut into training and validation, stratified and seeded,
the same in every process; and its record, `split_manifest`."""

import json
import logging
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tiny_image_folder import write_class_folder
from xception.data import DataConfig, build_datasets
from xception.data.split import stratified_split, validation_count
from xception.data.split_manifest import split_manifest

COUNTS = {"cat": 12, "dog": 7, "fox": 3, "owl": 2}


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    return write_class_folder(tmp_path_factory.mktemp("classes"), COUNTS)


def config(root, **overrides):
    return DataConfig(**{"source": "imagefolder", "path": str(root), "image_size": 16, "in_channels": 1,
                         "val_split": 0.25, "seed": 3, **overrides})


def test_stratified_split_counts_per_class_and_partition():
    labels = [0] * 50 + [1] * 30 + [2] * 13 + [3] * 7 + [4] * 2
    train, val = stratified_split(labels, fraction=0.2, seed=0)
    assert sorted(train + val) == list(range(len(labels))) and not set(train) & set(val)
    val_counts = Counter(labels[i] for i in val)
    # round(0.2 n): 10, 6, 2.6 -> 3, 1.4 -> 1, 0.4 -> clamped up to 1
    assert [val_counts[c] for c in range(5)] == [10, 6, 3, 1, 1]


def test_stratified_split_proportions_match_sklearn_stratified_shuffle_split():
    sklearn = pytest.importorskip("sklearn.model_selection")
    rng = np.random.default_rng(1)
    labels = rng.choice(6, size=997, p=[0.4, 0.25, 0.15, 0.1, 0.07, 0.03])
    _, val = stratified_split(labels.tolist(), fraction=0.15, seed=4)
    ours = np.bincount(labels[val], minlength=6)
    splitter = sklearn.StratifiedShuffleSplit(n_splits=1, test_size=0.15, random_state=0)
    _, reference = next(splitter.split(np.zeros(len(labels)), labels))
    theirs = np.bincount(labels[reference], minlength=6)
    assert np.abs(ours - theirs).max() <= 1  # sklearn fills the total with a rounding of its own
    assert abs(len(val) - len(reference)) <= 3
    # Each class keeps its share of the data in validation.
    np.testing.assert_allclose(ours / ours.sum(), np.bincount(labels, minlength=6) / len(labels), atol=0.01)


def test_stratified_split_depends_on_the_seed_and_not_on_other_classes():
    labels = [0] * 20 + [1] * 20
    _, first = stratified_split(labels, fraction=0.3, seed=0)
    _, again = stratified_split(labels, fraction=0.3, seed=0)
    _, other_seed = stratified_split(labels, fraction=0.3, seed=1)
    assert first == again and first != other_seed
    # A third class added after the others leaves their validation items as they were.
    _, with_more = stratified_split(labels + [2] * 10, fraction=0.3, seed=0)
    assert [i for i in with_more if i < 40] == first


def test_stratified_split_single_image_class_stays_in_training(caplog):
    with caplog.at_level(logging.WARNING, logger="xception.data.split"):
        train, val = stratified_split([0, 0, 0, 1], fraction=0.5, seed=0, names=["many", "lonely"])
    assert 3 in train and len(val) == validation_count(3, 0.5) == 2
    assert "lonely" in caplog.text


def test_imagefolder_val_split_builds_both_splits_from_one_folder(class_folder):
    datasets = build_datasets(config(class_folder))
    assert datasets.class_names == sorted(COUNTS) and datasets.num_classes == 4
    val_counts = Counter(datasets.val.targets)
    assert [val_counts[c] for c in range(4)] == [3, 2, 1, 1]  # round(0.25 n): 3, 1.75, 0.75 -> 1, 0.5 -> 1
    assert len(datasets.train) + len(datasets.val) == sum(COUNTS.values())
    image, target = datasets.val[0]
    assert image.shape == (1, 16, 16) and target == 0
    first_train = datasets.train.samples[0][0]
    assert first_train.startswith(str(class_folder / "cat"))


def test_split_manifest_is_identical_in_another_process(class_folder):
    manifest = split_manifest(config(class_folder))
    assert manifest == split_manifest(config(class_folder))
    assert manifest["val"] != split_manifest(config(class_folder, seed=4))["val"]
    assert all(not path.startswith("/") and path.split("/")[0] in COUNTS for path in manifest["train"] + manifest["val"])
    code = ("import json, sys; from xception.data import DataConfig; from xception.data.split_manifest import "
            f"split_manifest; print(json.dumps(split_manifest(DataConfig(source='imagefolder', path={str(class_folder)!r}, "
            "image_size=16, in_channels=1, val_split=0.25, seed=3))))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(output) == manifest


def test_split_manifest_follows_the_train_examples_subset(class_folder):
    datasets = build_datasets(config(class_folder, train_examples=5))
    manifest = split_manifest(config(class_folder, train_examples=5), datasets)
    assert len(manifest["train"]) == 5
    assert [str(class_folder / p) for p in manifest["train"]] == [
        datasets.train.dataset.samples[i][0] for i in datasets.train.indices]


def test_imagefolder_val_split_errors_name_the_problem(tmp_path, class_folder):
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        build_datasets(config(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*extensions"):
        build_datasets(config(tmp_path))
    both = write_class_folder(tmp_path / "both" / "train", {"a": 2}).parent
    write_class_folder(both / "val", {"a": 2})
    with pytest.raises(ValueError, match="holds train/ and val/ already"):
        build_datasets(config(both))
    with pytest.raises(ValueError, match=r"val_split must be a fraction in \(0, 1\)"):
        config(class_folder, val_split=1.0)
    with pytest.raises(ValueError, match="comes with its own validation split"):
        DataConfig(source="fashion_mnist", path=None, image_size=28, val_split=0.1)
    with pytest.raises(ValueError, match="not a folder of files"):
        split_manifest(DataConfig(source="fashion_mnist", path=None, image_size=28))


def test_cli_train_data_flags_set_the_data_fields(class_folder):
    from xception.cli import build_parser
    from xception.cli.train import build_config

    argv = ["train", "--model", "xception_small", "--data", str(class_folder), "--val-split", "0.2", "--resize", "squash",
            "--sampler", "balanced", "--class-weighting", "inverse_frequency"]
    data = build_config(build_parser().parse_args(argv)).data
    assert (data.source, data.val_split, data.resize, data.sampler, data.class_weighting) == (
        "imagefolder", 0.2, "squash", "balanced", "inverse_frequency")
    plain = build_config(build_parser().parse_args(argv[:5])).data
    assert (plain.val_split, plain.resize, plain.sampler, plain.class_weighting) == (None, "crop", "shuffle", "none")
