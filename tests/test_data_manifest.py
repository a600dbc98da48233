"""Multi-label manifests: the JSONL and CSV formats, the class list and weights, and bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from xception.data import DataConfig, build_datasets
from xception.data.class_weights import read_class_weights
from xception.data.manifest import read_manifest, write_manifest

ROWS = [("a.png", ["cat", "dog"]), ("sub/b.png", []), ("c.png", ["dog, the big one"])]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_manifest_rows_round_trip(tmp_path, suffix):
    write_manifest(tmp_path / f"train{suffix}", ROWS)
    assert read_manifest(tmp_path / f"train{suffix}") == ROWS


def test_manifest_csv_is_the_documented_format(tmp_path):
    write_manifest(tmp_path / "val.csv", ROWS[:2])
    assert (tmp_path / "val.csv").read_text().splitlines() == ["path,labels", "a.png,cat|dog", "sub/b.png,"]
    write_manifest(tmp_path / "val.jsonl", ROWS[:1])
    assert json.loads((tmp_path / "val.jsonl").read_text()) == {"path": "a.png", "labels": ["cat", "dog"]}


def test_manifest_malformed_lines_name_file_and_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"path": "a.png", "labels": []}\n{"path": "b.png"}\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2: expected"):
        read_manifest(tmp_path / "train.jsonl")
    (tmp_path / "train.csv").write_text("image,tags\na.png,x\n")
    with pytest.raises(ValueError, match=r"train.csv:1: the header must be 'path,labels'"):
        read_manifest(tmp_path / "train.csv")


def make_dataset(root, *, classes_file: bool):
    generator = np.random.default_rng(0)
    for name in ("a.png", "sub/b.png", "c.png", "v.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(generator.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(root / name)
    write_manifest(root / "train.jsonl", [("a.png", ["cat", "dog"]), ("sub/b.png", []), ("c.png", ["dog"])])
    write_manifest(root / "val.csv", [("v.png", ["bird"])])
    if classes_file:
        (root / "classes.txt").write_text("dog\ncat\nbird\nfish\n")


def test_multilabel_source_targets_classes_and_frequency_weights(tmp_path):
    make_dataset(tmp_path, classes_file=False)
    datasets = build_datasets(DataConfig(source="multilabel", path=str(tmp_path), image_size=24))
    assert datasets.class_names == ["bird", "cat", "dog"] and datasets.multilabel
    assert [datasets.train[i][1].tolist() for i in range(3)] == [[0, 1, 1], [0, 0, 0], [0, 0, 1]]
    assert datasets.val[0][1].tolist() == [1, 0, 0]
    image = datasets.train[0][0]
    assert image.shape == (3, 24, 24) and -1 <= image.min() and image.max() <= 1
    # FastEval14k weighting from the training labels: bird 0, cat 1, dog 2 of 3 labels.
    assert torch.allclose(datasets.class_weights, torch.tensor([0.0, 1 / 3, 2 / 3]))


def test_multilabel_source_classes_file_and_weights_file(tmp_path):
    make_dataset(tmp_path, classes_file=True)
    (tmp_path / "class_weights.json").write_text(json.dumps({"dog": 1, "cat": 2, "bird": 3, "fish": 4}))
    datasets = build_datasets(DataConfig(source="multilabel", path=str(tmp_path), image_size=24))
    assert datasets.class_names == ["dog", "cat", "bird", "fish"]
    assert datasets.train[0][1].tolist() == [1, 1, 0, 0]
    assert datasets.class_weights.tolist() == [1, 2, 3, 4]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"dog": 0.5, "cat": 0.5, "bird": 0, "fish": 0}))
    datasets = build_datasets(
        DataConfig(source="multilabel", path=str(tmp_path), image_size=24, class_weights_path=str(other))
    )
    assert datasets.class_weights.tolist() == [0.5, 0.5, 0, 0]


def test_multilabel_source_bad_input_names_the_problem(tmp_path):
    make_dataset(tmp_path, classes_file=False)
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="val.csv uses labels not in .*classes.txt: \\['bird'\\]"):
        build_datasets(DataConfig(source="multilabel", path=str(tmp_path), image_size=24))
    with pytest.raises(FileNotFoundError, match="no val.jsonl or val.csv"):
        (tmp_path / "val.csv").unlink()
        build_datasets(DataConfig(source="multilabel", path=str(tmp_path), image_size=24))
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"cat": 1}))
    with pytest.raises(ValueError, match="missing \\['dog'\\]"):
        read_class_weights(weights, ["cat", "dog"])
