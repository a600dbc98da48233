"""The paper's weights from the command line, as a new user meets them: `predict --weights imagenet`
(downloaded from a loopback server), `convert` of the official .h5 and `predict` on either file,
`eval` on a small ImageNet validation folder in both layouts. The file is in the official Keras
layout with random weights, so the reference for every prediction is Keras' own model on it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos

from official_weights import FileServer, pointed_at
from xception.cli import main
from xception.data.prediction import prediction_transform
from xception.imagenet_classes import IMAGENET_CATEGORIES, IMAGENET_WNIDS
from xception.models.weights import read_metadata
from xception.models.weights.registry import WEIGHTS, XCEPTION_IMAGENET

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # building Keras: ~10 s
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="module")
def official(official_xception):
    """(the official-layout file, Keras' model holding the same weights)."""
    return official_xception


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in PHOTOS:
        paths.append(folder / f"{name}.jpg")
        Image.fromarray(getattr(photos, name)()).convert("RGB").save(paths[-1], quality=95)
    return paths


@pytest.fixture(scope="module")
def keras_top5(official, photo_files):
    """Keras' top-5 class indices for each photo, prepared as the registry entry says."""
    import keras

    _, keras_model = official
    transform = prediction_transform(XCEPTION_IMAGENET.preprocessing, in_channels=3)
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in photo_files]).permute(0, 2, 3, 1)
    logits = keras.ops.convert_to_numpy(keras_model(batch.numpy(), training=False))
    return np.argsort(-logits, axis=1)[:, :5]


def printed_predictions(output: str) -> dict[str, list[tuple[float, str]]]:
    rows: dict[str, list[tuple[float, str]]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("  "):
            probability, name = line.strip().split("  ", 1)
            rows[current].append((float(probability), name.strip()))
        else:
            current = os.path.basename(line)
            rows[current] = []
    return rows


def test_cli_predict_imagenet_downloads_and_prints_imagenet_names(official, photo_files, keras_top5, tmp_path,
                                                                  monkeypatch, capsys):
    path, _ = official
    server = FileServer({path.name: path.read_bytes()})
    try:
        monkeypatch.setenv("XCEPTION_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("XCEPTION_WEIGHTS_URL", server.url)
        monkeypatch.setitem(WEIGHTS, XCEPTION_IMAGENET.key, pointed_at(XCEPTION_IMAGENET, path))
        assert main(["predict", str(photo_files[0]), "--weights", "imagenet", "--precision", "fp32"]) == 0
    finally:
        server.close()
    captured = capsys.readouterr()
    assert "\r" not in captured.err  # no progress bar where stderr is no terminal (the log lines instead)
    assert (tmp_path / "home" / "weights" / path.name).is_file()
    row = printed_predictions(captured.out)["astronaut.jpg"]
    assert [name for _, name in row] == [IMAGENET_CATEGORIES[i] for i in keras_top5[0]]
    assert [p for p, _ in row] == sorted((p for p, _ in row), reverse=True)


def test_cli_convert_official_h5_writes_classes_and_preparation_and_predict_agrees(
    official, photo_files, keras_top5, tmp_path, capsys
):
    path, _ = official
    converted = tmp_path / "imagenet.safetensors"
    assert main(["convert", str(path), str(converted)]) == 0
    metadata = read_metadata(converted)
    assert metadata["class_names"] == list(IMAGENET_CATEGORIES)
    assert metadata["data"] == XCEPTION_IMAGENET.file_metadata()["data"]
    assert metadata["weights"]["key"] == "xception.imagenet"
    outputs = []
    for weights in (converted, path):  # the converted file and the official .h5 itself
        capsys.readouterr()
        assert main(["predict", *map(str, photo_files), "--weights", str(weights), "--precision", "fp32"]) == 0
        outputs.append(printed_predictions(capsys.readouterr().out))
    assert outputs[0].keys() == outputs[1].keys() == {p.name for p in photo_files}
    for index, photo in enumerate(photo_files):
        for rows in outputs:
            assert [name for _, name in rows[photo.name]] == [IMAGENET_CATEGORIES[i] for i in keras_top5[index]]
        probabilities = [[p for p, _ in rows[photo.name]] for rows in outputs]
        assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-4)


def imagenet_folders(root, photo_files, labels):
    """The same four images as synset folders and as a flat folder with TensorFlow's labels file."""
    synsets, flat = root / "synsets", root / "flat" / "val"
    flat.mkdir(parents=True)
    lines = []
    for number, (photo, label) in enumerate(zip(photo_files, labels, strict=True), start=1):
        wnid = IMAGENET_WNIDS[label]
        (synsets / wnid).mkdir(parents=True, exist_ok=True)
        name = f"ILSVRC2012_val_{number:08d}.JPEG"
        (synsets / wnid / name).write_bytes(photo.read_bytes())
        (flat / name).write_bytes(photo.read_bytes())
        lines.append(wnid)
    (root / "flat" / "imagenet_2012_validation_synset_labels.txt").write_text("\n".join(lines) + "\n")
    return synsets, flat


def test_cli_eval_imagenet_both_layouts_give_keras_accuracy(official, photo_files, keras_top5, tmp_path, capsys):
    path, _ = official
    # Two photos labelled with Keras' top-1, one with its 3rd guess, one with a class outside its top 5.
    outside = next(i for i in range(1000) if i not in keras_top5[3])
    labels = [int(keras_top5[0, 0]), int(keras_top5[1, 0]), int(keras_top5[2, 2]), outside]
    synsets, flat = imagenet_folders(tmp_path, photo_files, labels)
    results = []
    for folder in (synsets, flat):
        capsys.readouterr()
        assert main(["eval", "--weights", str(path), "--data", str(folder), "--precision", "fp32",
                     "--batch-size", "2", "--json"]) == 0
        captured = capsys.readouterr()
        results.append(json.loads(captured.out))
        assert "\r" not in captured.err  # no progress bar where stderr is no terminal
    for metrics in results:
        assert (metrics["examples"], metrics["correct1"], metrics["correct5"]) == (4, 2, 3)
        assert metrics["images_per_second"] > 0
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)


def test_cli_export_takes_the_official_h5_and_checks_the_exported_file(official, tmp_path, capsys):
    path, _ = official
    out = tmp_path / "xception.pt"
    assert main(["export", "--weights", str(path), "--format", "torchscript", "--out", str(out),
                 "--image-size", "96"]) == 0  # a small size keeps the test short; 299 is the default
    assert "96x96" in capsys.readouterr().out
    scripted = torch.jit.load(str(out))
    assert scripted(torch.zeros(1, 3, 96, 96)).shape == (1, 1000)


def test_cli_convert_torchvision_inception_v3_records_torchvisions_preparation(tmp_path, capsys):
    from torchvision.models import inception_v3

    from xception.models.weights.registry import INCEPTION_V3_IMAGENET

    state_file = tmp_path / "inception_v3_google.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), state_file)
    converted = tmp_path / "inception_v3.safetensors"
    assert main(["convert", "--model", "inception_v3", str(state_file), str(converted)]) == 0
    assert '"as": "inception_v3.imagenet"' in capsys.readouterr().out
    metadata = read_metadata(converted)
    assert metadata["class_names"] == list(IMAGENET_CATEGORIES)
    assert metadata["data"]["interpolation"] == "bilinear"
    assert int(299 / metadata["data"]["crop_fraction"]) == 342  # torchvision's resize
    assert metadata["weights"]["file_name"] == INCEPTION_V3_IMAGENET.file_name
