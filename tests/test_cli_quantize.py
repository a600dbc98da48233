"""`xception quantize`: int8 from trained weights, calibrated on their training data, with its cost,
and the int8 files it writes reloaded and run."""

from __future__ import annotations

import json

import pytest
import torch

import xception.data.fashion_mnist as fm
from xception import create_model
from xception.cli import main
from xception.models.weights import save_weights

CLASSES = [f"garment {k}" for k in range(10)]
WRITTEN = {"nncf": "int8_nncf.xml", "pt2e": "int8_pt2e.pt2", "onnxruntime": "int8_onnxruntime.onnx"}


@pytest.mark.slow  # the data set, quantization and two evaluations of 10,000 images: 30-90 s
@pytest.mark.parametrize("method,module", [("nncf", "nncf"), ("pt2e", "torchao"), ("onnxruntime", "onnxruntime")])
def test_cli_quantize_reports_the_cost_and_writes_the_model_it_measured(method, module, fashion_mnist, tmp_path,
                                                                         capsys, one_thread):
    pytest.importorskip(module)
    if method == "nncf":
        pytest.importorskip("openvino")
    from xception.deploy.quantize import load_quantized

    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, in_channels=1, width=0.125, middle_repeats=1)
    with torch.no_grad():  # predictions that depend on the image
        model.classifier.weight.mul_(20)
    data = {"source": "fashion_mnist", "path": str(fashion_mnist), "image_size": 28, "in_channels": 1}
    weights = save_weights(model, tmp_path / "w.safetensors", metadata={"class_names": CLASSES, "data": data})

    assert main(["quantize", "--weights", str(weights), "--method", method, "--calibration-size", "16",
                 "--out", str(tmp_path / "q")]) == 0
    printed = capsys.readouterr().out
    assert "10000 validation images, calibrated on 16 training images" in printed and f"| {method} |" in printed
    report = json.loads((tmp_path / "q" / "int8.json").read_text())
    (result,) = report["results"]
    assert report["better"] == method and result["examples"] == 10_000
    # Independently: the fp32 model on the test images as x / 127.5 - 1, and the int8 file written,
    # reloaded and run on them.
    pixels, labels = (fm.read_idx(fm.find_file(fashion_mnist, f"t10k-{kind}")).numpy()
                      for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))
    images = torch.from_numpy(pixels).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        fp32 = model.eval()(images).argmax(1).numpy()
    engine = load_quantized(tmp_path / "q" / WRITTEN[method])
    assert engine.precision == "int8"
    int8 = torch.cat([engine(batch) for batch in images.split(250)]).argmax(1).numpy()
    assert result["top1_reference"] == pytest.approx(float((fp32 == labels).mean()))
    assert result["top1_candidate"] == pytest.approx(float((int8 == labels).mean()), abs=0.002)
    assert result["agreement"] == pytest.approx(float((int8 == fp32).mean()), abs=0.002)
    assert result["agreement"] > 0.5  # int8 of the same network, not another one


def test_load_quantized_refuses_another_suffix():
    from xception.deploy.quantize import load_quantized

    with pytest.raises(ValueError, match=r"\.onnx \(onnxruntime QDQ\) file; got 'model.tflite'"):
        load_quantized("model.tflite")


def test_cli_quantize_refuses_a_missing_file(capsys):
    assert main(["quantize", "--weights", "/no/w.safetensors"]) == 2
    assert "no such weight file: /no/w.safetensors" in capsys.readouterr().err
