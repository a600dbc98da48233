"""`xception quantize`: int8 from trained weights, calibrated on their training data, with its cost."""

from __future__ import annotations

import json

import pytest
import torch

import xception.data.fashion_mnist as fm
from xception import create_model
from xception.cli import main
from xception.models.weights import save_weights

needs_fashion_mnist = pytest.mark.skipif(
    not fm.holds_fashion_mnist(fm.DEBIAN_DIR),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)

CLASSES = [f"garment {k}" for k in range(10)]


@needs_fashion_mnist
@pytest.mark.slow  # the data set, an ONNX export, NNCF and two evaluations of 10,000 images: 30-70 s
def test_cli_quantize_nncf_reports_the_cost_and_writes_the_model_it_measured(tmp_path, capsys, one_thread):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    from xception.deploy.runtimes import openvino_core

    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, in_channels=1, width=0.125, middle_repeats=1)
    with torch.no_grad():  # predictions that depend on the image
        model.classifier.weight.mul_(20)
    data = {"source": "fashion_mnist", "path": str(fm.DEBIAN_DIR), "image_size": 28, "in_channels": 1}
    weights = save_weights(model, tmp_path / "w.safetensors", metadata={"class_names": CLASSES, "data": data})

    assert main(["quantize", "--weights", str(weights), "--method", "nncf", "--calibration-size", "16",
                 "--out", str(tmp_path / "q")]) == 0
    printed = capsys.readouterr().out
    assert "10000 validation images, calibrated on 16 training images" in printed and "| nncf |" in printed
    report = json.loads((tmp_path / "q" / "int8.json").read_text())
    (result,) = report["results"]
    assert report["better"] == "nncf" and result["examples"] == 10_000
    # Independently: the fp32 model on the test images as x / 127.5 - 1, and the saved IR in OpenVINO.
    pixels, labels = (fm.read_idx(fm.find_file(fm.DEBIAN_DIR, f"t10k-{kind}")).numpy()
                      for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    images = torch.from_numpy(pixels).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        fp32 = model.eval()(images).argmax(1).numpy()
    # Through the process's one Core: a second Core freed before ours would leave OpenVINO's freed
    # signal stack installed (see xception.deploy.runtimes.openvino_core).
    int8 = openvino_core().compile_model(str(tmp_path / "q" / "int8_nncf.xml"), "CPU")(images.numpy())[0].argmax(1)
    assert result["top1_reference"] == pytest.approx(float((fp32 == labels).mean()))
    assert result["top1_candidate"] == pytest.approx(float((int8 == labels).mean()), abs=0.002)
    assert result["agreement"] == pytest.approx(float((int8 == fp32).mean()), abs=0.002)


def test_cli_quantize_refuses_a_missing_file(capsys):
    assert main(["quantize", "--weights", "/no/w.safetensors"]) == 2
    assert "no such weight file: /no/w.safetensors" in capsys.readouterr().err
