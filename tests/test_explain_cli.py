"""`xception explain` and `xception predict --explain`: the files written, their contents against
the library called directly, and the one-line errors of issue 20."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from test_cli_errors import WRITE_UNREADABLE, one_line_error
from xception.cli import main
from xception.data.mosaic_masks import SEGMENTATION_CLASSES
from xception.explain import explain
from xception.models import create_model
from xception.models.weights import save_weights

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["T-shirt/top", "Trouser", "Bag"]


@pytest.fixture(scope="module")
def canvas_weights(tmp_path_factory):
    """An untrained narrow xception_small for 56 px canvases, with its metadata as training writes it."""
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1)
    data = {"source": "canvas", "path": None, "image_size": 56, "in_channels": 1, "mosaic_grid": 2}
    return save_weights(model.eval(), tmp_path_factory.mktemp("weights") / "w.safetensors",
                        metadata={"class_names": CLASSES, "data": data}), model.eval()


@pytest.fixture(scope="module")
def canvas_png(tmp_path_factory):
    """A 56 px canvas with a bright patch in its top-right cell, and its model input (1, 1, 56, 56)."""
    pixels = np.zeros((56, 56), np.uint8)
    pixels[6:22, 34:50] = np.random.default_rng(0).integers(80, 256, (16, 16))
    path = tmp_path_factory.mktemp("images") / "canvas.png"
    Image.fromarray(pixels).save(path)
    return path, torch.from_numpy(pixels).float()[None, None] / 127.5 - 1


def test_cli_explain_writes_overlay_and_raw_map_per_class(canvas_weights, canvas_png, tmp_path, capsys):
    weights, model = canvas_weights
    path, image = canvas_png
    assert main(["explain", str(path), "--weights", str(weights), "--class", "Bag", "--class", "T-shirt/top",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with torch.no_grad():
        probabilities = model(image).softmax(dim=1)[0]
    for line, (c, name, slug) in zip(lines, [(2, "Bag", "Bag"), (0, "T-shirt/top", "T-shirt_top")], strict=True):
        assert line.startswith(f"{path}: {name} p={float(probabilities[c]):.4f} (gradcam at exit_flow.block7)")
        raw = np.load(tmp_path / f"canvas.{slug}.gradcam.npy")
        assert raw.dtype == np.float32 and raw.shape == (56, 56) and 0 <= raw.min() and raw.max() <= 1
        np.testing.assert_allclose(raw, explain(model, image, [c]).maps[0].numpy(), atol=1e-6)
        overlay = Image.open(tmp_path / f"canvas.{slug}.gradcam.png")
        assert overlay.mode == "RGB" and overlay.size == (224, 224)  # 56 px enlarged 4x to be seen


def test_cli_explain_default_class_is_the_top_prediction(canvas_weights, canvas_png, tmp_path, capsys):
    weights, model = canvas_weights
    path, image = canvas_png
    assert main(["explain", str(path), "--weights", str(weights), "--method", "cam", "--layer", "exit_flow.block7",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    with torch.no_grad():
        top = int(model(image).argmax())
    assert capsys.readouterr().out.startswith(f"{path}: {CLASSES[top]} p=")


@pytest.mark.parametrize("kind", ["not_an_image", "truncated", "bomb"])
def test_cli_explain_unreadable_image_is_one_line(kind, canvas_weights, tmp_path, capsys):
    write, reason = WRITE_UNREADABLE[kind]
    write(tmp_path / "photo.png")
    assert main(["explain", str(tmp_path / "photo.png"), "--weights", str(canvas_weights[0]), "--out",
                 str(tmp_path / "out")]) == 2
    assert one_line_error(capsys, "explain").startswith(f"cannot read image {tmp_path / 'photo.png'}: {reason}")


@pytest.mark.parametrize(("option", "expected"), [
    (["--class", "Sandal"], "unknown class 'Sandal' for these weights; valid: T-shirt/top, Trouser, Bag"),
    (["--layer", "block14_sepconv2_act"], "unknown layer 'block14_sepconv2_act' for this model; valid (feature_info, "
     "the last is the default): stem, entry_flow.block2, entry_flow.block3, middle_flow.block5, exit_flow.block7"),
])
def test_cli_explain_unknown_name_is_one_line_listing_the_valid_ones(option, expected, canvas_weights, canvas_png,
                                                                     tmp_path, capsys):
    assert main(["explain", str(canvas_png[0]), "--weights", str(canvas_weights[0]), *option,
                 "--out", str(tmp_path)]) == 2
    assert one_line_error(capsys, "explain") == expected


def test_cli_explain_cam_on_an_inner_layer_is_one_line(canvas_weights, canvas_png, tmp_path, capsys):
    assert main(["explain", str(canvas_png[0]), "--weights", str(canvas_weights[0]), "--method", "cam",
                 "--layer", "stem", "--out", str(tmp_path)]) == 2
    assert "CAM is defined at the last feature map only" in one_line_error(capsys, "explain")


def test_cli_predict_explain_writes_the_top_class_overlay_beside_the_image(canvas_weights, canvas_png, tmp_path,
                                                                          capsys):
    weights, model = canvas_weights
    path, image = canvas_png
    assert main(["predict", str(path), "--weights", str(weights), "--runtime", "torch", "--device", "cpu",
                 "--explain", "--top-k", "1"]) == 0
    with torch.no_grad():
        top = int(model(image).argmax())
    slug = CLASSES[top].replace("/", "_")
    assert f"explained: {path}: {CLASSES[top]} p=" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(path.parent / f"canvas.{slug}.gradcam.npy"),
                               explain(model, image, [top]).maps[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("command", ["explain", "predict"])
def test_cli_explain_segmentation_maps_the_most_common_foreground_class(command, tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_small", num_classes=11, in_channels=1).eval()
    data = {"source": "mosaic_masks", "path": None, "image_size": 56, "in_channels": 1, "mosaic_grid": 2}
    weights = save_weights(model, tmp_path / "w.safetensors",
                           metadata={"class_names": list(SEGMENTATION_CLASSES), "data": data})
    pixels = np.random.default_rng(0).integers(0, 256, (56, 56), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "mosaic.png")
    options = ["--runtime", "torch", "--explain"] if command == "predict" else []
    assert main([command, str(tmp_path / "mosaic.png"), "--weights", str(weights), "--out", str(tmp_path / "out"),
                 "--device", "cpu", *options]) == 0
    with torch.no_grad():
        predicted = model(torch.from_numpy(pixels).float()[None, None] / 127.5 - 1).argmax(dim=1).flatten()
    counts = predicted.bincount(minlength=11)
    expected = int(counts[1:].argmax()) + 1 if counts[1:].sum() else 0
    share = float(counts[expected]) / predicted.numel()
    output = capsys.readouterr().out
    line = output.split("explained: ")[-1]  # predict prints the mask and the shares first
    assert line.startswith(f"{tmp_path / 'mosaic.png'}: {SEGMENTATION_CLASSES[expected]} p={share:.4f} "
                           "(gradcam at exit_flow.block9)")
    assert (tmp_path / f"out/mosaic.{SEGMENTATION_CLASSES[expected].replace('/', '_')}.gradcam.npy").is_file()
    assert (tmp_path / "out/mosaic.mask.png").is_file() == (command == "predict")


def test_cli_explain_multilabel_gives_one_map_per_label_with_its_sigmoid(canvas_png, tmp_path, capsys):
    torch.manual_seed(1)
    model = create_model("xception_small", num_classes=3, in_channels=1, width=0.125, middle_repeats=1).eval()
    data = {"source": "mosaic", "path": None, "image_size": 56, "in_channels": 1, "mosaic_grid": 2}
    weights = save_weights(model, tmp_path / "w.safetensors",
                           metadata={"class_names": CLASSES, "data": data, "multilabel": True})
    path, image = canvas_png
    assert main(["explain", str(path), "--weights", str(weights), "--class", "Trouser", "--class", "Bag",
                 "--method", "gradcam++", "--out", str(tmp_path / "out")]) == 0
    with torch.no_grad():
        probabilities = model(image).sigmoid()[0]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"{path}: Trouser p={float(probabilities[1]):.4f}",
                                                     f"{path}: Bag p={float(probabilities[2]):.4f}"]
    trouser, bag = (np.load(tmp_path / f"out/canvas.{name}.gradcam++.npy") for name in ("Trouser", "Bag"))
    np.testing.assert_allclose(bag, explain(model, image, [2], method="gradcam++").maps[0].numpy(), atol=1e-6)
    assert np.abs(trouser - bag).max() > 0.01  # each label its own map
