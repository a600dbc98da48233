"""`xception eval --split`: weights fine-tuned on one folder with --val-split, then scored on a test
folder of the same classes (every image of it), as a user does after `train --val-split`; and the
cases that would silently score the wrong images refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_data_segfolder import write_simple
from tiny_image_folder import write_class_folder
from xception import create_model
from xception.cli import main
from xception.models.weights import save_weights

COUNTS = {"coat": 8, "dress": 8, "shirt": 8}


def _weights(tmp_path: Path, data: dict, classes: list[str]) -> str:
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=len(classes), in_channels=1, width=0.125, middle_repeats=1)
    for module in model.modules():  # BatchNorm statistics of images as bright as the folders' (30-110 of 255),
        if isinstance(module, torch.nn.BatchNorm2d):  # so that the predictions differ between images
            module.reset_running_stats()
            module.momentum = None
    levels = torch.linspace(-0.9, -0.1, 32)[:, None, None, None]
    model.train()(levels + 0.1 * torch.randn(32, 1, 20, 20))
    path = save_weights(model, tmp_path / "w.safetensors", metadata={"class_names": classes, "data": data})
    return str(path)


@pytest.fixture
def fine_tuned(tmp_path):
    """Weights recorded as trained on `train/` with --val-split 0.25, squash-resized at the images'
    own 20 px (so the evaluation input is the image itself), and a test folder `test/`."""
    train = write_class_folder(tmp_path / "train", COUNTS)
    test = write_class_folder(tmp_path / "test", {name: 4 for name in COUNTS})
    data = {"source": "imagefolder", "path": str(train), "image_size": 20, "in_channels": 1, "resize": "squash",
            "val_split": 0.25}
    return _weights(tmp_path, data, list(COUNTS)), train, test


def _eval(capsys, weights: str, *extra: str) -> tuple[int, str, str]:
    code = main(["eval", "--weights", weights, "--device", "cpu", "--runtime", "torch", "--precision", "fp32",
                 "--json", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_split_all_scores_every_image_of_a_test_folder(fine_tuned, capsys):
    weights, _, test = fine_tuned
    code, out, _ = _eval(capsys, weights, "--data", str(test), "--split", "all")
    assert code == 0
    metrics = json.loads(out)
    # Independently: every PNG of test/, as x / 127.5 - 1, through the model; labels from the folder names.
    from xception.models.trained import open_weights

    model, _, _ = open_weights(weights)
    files = sorted(test.glob("*/*.png"))
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(f))).float()[None] / 127.5 - 1 for f in files])
    labels = np.array([list(COUNTS).index(f.parent.name) for f in files])
    with torch.no_grad():
        predicted = model.eval()(pixels).argmax(1).numpy()
    assert metrics["examples"] == len(files) == 12
    assert metrics["top1"] == pytest.approx(float((predicted == labels).mean()), abs=1e-6)
    assert len(set(predicted.tolist())) > 1  # an order of files and labels that matters


def test_another_folder_without_split_is_refused_naming_both_choices(fine_tuned, capsys):
    weights, _, test = fine_tuned
    code, _, err = _eval(capsys, weights, "--data", str(test))
    assert code == 2
    assert "--split all to evaluate every image" in err and "--split val" in err and str(test) in err


def test_split_val_on_another_folder_scores_its_held_out_quarter(fine_tuned, capsys):
    weights, _, test = fine_tuned
    code, out, _ = _eval(capsys, weights, "--data", str(test), "--split", "val")
    assert code == 0 and json.loads(out)["examples"] == 3  # one of each class's 4


def test_the_training_folder_keeps_its_held_out_split_and_refuses_all(fine_tuned, capsys):
    weights, train, _ = fine_tuned
    code, out, _ = _eval(capsys, weights)
    assert code == 0 and json.loads(out)["examples"] == 6  # 2 of each class's 8
    code, _, err = _eval(capsys, weights, "--data", str(train), "--split", "all")
    assert code == 2 and "would score training images" in err


def test_split_all_refuses_a_test_folder_with_other_class_names(fine_tuned, tmp_path, capsys):
    weights, _, _ = fine_tuned
    other = write_class_folder(tmp_path / "other", {"coat": 2, "dress": 2, "sandal": 2})
    code, _, err = _eval(capsys, weights, "--data", str(other), "--split", "all")
    assert code == 2 and "'sandal'" in err and "'shirt'" in err


def test_split_all_refuses_a_source_with_its_own_test_split(tmp_path, capsys):
    data = {"source": "fashion_mnist", "path": str(tmp_path), "image_size": 28, "in_channels": 1}
    weights = _weights(tmp_path, data, [str(k) for k in range(10)])
    code, _, err = _eval(capsys, weights, "--data", str(tmp_path), "--split", "all")
    assert code == 2 and "fashion_mnist comes with its own validation split" in err


def test_split_all_scores_every_image_and_mask_of_a_segmentation_folder(tmp_path, capsys):
    train, test = write_simple(tmp_path / "train", 10), write_simple(tmp_path / "test", 6)
    data = {"source": "segfolder", "path": str(train), "image_size": 20, "in_channels": 1, "resize": "squash",
            "val_split": 0.3}
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_small", num_classes=3, in_channels=1)
    weights = save_weights(model, tmp_path / "seg.safetensors",
                           metadata={"class_names": ["0", "1", "2"], "data": data, "task": "segmentation"})
    code, out, err = _eval(capsys, str(weights), "--data", str(test), "--split", "all")
    assert code == 0, err
    assert json.loads(out)["examples"] == 6


def test_the_mosaics_val_split_follows_fashion_mnist_wherever_its_files_are():
    from types import SimpleNamespace

    from xception.eval.evaluate import evaluation_split

    recorded = SimpleNamespace(data={"source": "mosaic_masks", "path": "/data/fashion", "val_split": 0.1})
    assert evaluation_split(recorded, "mosaic_masks", "/elsewhere/fashion", None) == "val"
    folder = SimpleNamespace(data={"source": "imagefolder", "path": "/data/photos", "val_split": 0.1})
    with pytest.raises(ValueError, match="--split all"):
        evaluation_split(folder, "imagefolder", "/elsewhere/photos", None)
