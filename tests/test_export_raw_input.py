"""`xception export --raw-input`: uint8 (N, H, W, C) in, scaling inside the graph, class names in the
file's metadata; checked against PyTorch on scikit-image's photographs prepared as `predict` does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from serving import write_photos, write_tiny_weights
from xception.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def prepared(weights, tmp_path_factory):
    """(the photos as uint8 (N, H, W, C) at the input size, PyTorch's probabilities for them)."""
    from xception.data.images import load_image
    from xception.data.prediction import prediction_transform
    from xception.models.trained import open_weights

    model, _, description = open_weights(str(weights))
    transform = prediction_transform(description.preprocessing, in_channels=3)
    photos = write_photos(tmp_path_factory.mktemp("photos"))
    images = torch.stack([transform(load_image(p, in_channels=3)) for p in photos])
    # The preparation resizes 8-bit pixels, so each value is k / 127.5 - 1 for an integer k.
    pixels = ((images + 1) * 127.5).round()
    torch.testing.assert_close(pixels / 127.5 - 1, images, atol=1e-6, rtol=0)
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1)
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy(), probabilities.numpy()


def test_export_raw_input_onnx_matches_pytorch_in_onnxruntime(weights, prepared, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnx

    from xception.deploy.raw_input import run_raw_input

    out = tmp_path / "raw.onnx"
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--raw-input", "--out", str(out)]) == 0
    assert "uint8 (N, 32, 32, 3) in" in capsys.readouterr().out
    pixels, expected = prepared
    np.testing.assert_allclose(run_raw_input(out, pixels), expected, atol=1e-5, rtol=0)
    exported = onnx.load(str(out))
    props = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(props["class_names"]) == [f"class {k}" for k in range(7)]
    assert json.loads(props["preparation"]) == {"image_size": 32, "crop_fraction": 0.875, "interpolation": "bicubic",
                                                 "resize": "crop"}
    assert exported.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_export_raw_input_openvino_matches_pytorch(weights, prepared, tmp_path):
    pytest.importorskip("openvino")
    from xception.deploy.raw_input import run_raw_input
    from xception.deploy.runtimes import openvino_core

    out = tmp_path / "raw.xml"
    assert main(["export", "--weights", str(weights), "--format", "openvino", "--raw-input", "--out", str(out)]) == 0
    pixels, expected = prepared
    np.testing.assert_allclose(run_raw_input(out, pixels), expected, atol=1e-5, rtol=0)
    model = openvino_core().read_model(str(out))
    assert json.loads(model.get_rt_info(["xception", "class_names"]).astype(str)) == [f"class {k}" for k in range(7)]
    assert model.get_rt_info(["model_info", "labels"]).astype(str).split() == [f"class_{k}" for k in range(7)]


def test_export_raw_input_refuses_a_format_it_cannot_carry(weights, tmp_path):
    with pytest.raises(ValueError, match="--raw-input exports to onnx or openvino"):
        main(["-v", "export", "--weights", str(weights), "--format", "torchscript", "--raw-input",
              "--out", str(tmp_path / "raw.pt")])
