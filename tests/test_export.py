"""Every registered model exports (ONNX run in onnxruntime, torch.export) and compiles, matching PyTorch."""

from __future__ import annotations

import pytest
import torch

from xception import create_model, list_models
from xception.cli import main as cli_main
from xception.deploy.export import example_input, export_model, verify_export
from xception.models import MODELS

NUM_CLASSES = 50  # not 1000, so a hard-coded head size fails


def small_size(name: str) -> int:
    """A small input the model admits: its own size for the small variants, 75 px for the others."""
    return min(MODELS[name].input_size, 75)


def output_scale(model: torch.nn.Module, size: int) -> float:
    with torch.no_grad():
        return float(model(example_input(model, image_size=size, batch_size=1, seed=1)).abs().max())


# The deeper aligned models repeat xception41's and xception41p's modules: exporting them adds
# a minute and no new operator.
EXPORTED = [
    name
    for name in list_models()
    if name not in ("xception65", "xception71", "xception65p") and MODELS[name].task == "classification"
]


@pytest.mark.parametrize("name", EXPORTED)
def test_export_onnx_matches_pytorch_in_onnxruntime(name, tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    size = small_size(name)
    # Without onnxscript's optimizer: a third faster on 2 CPU cores, the same function.
    path = export_model(model, tmp_path / f"{name}.onnx", format="onnx", image_size=size, batch_size=1, optimize_onnx=False)
    difference = verify_export(model, path, format="onnx", image_size=size, batch_size=1)
    assert difference <= 1e-5 * max(1.0, output_scale(model, size))


@pytest.mark.parametrize("name", ["xception", "inception_v3"])
def test_export_torch_export_program_matches_pytorch(name, tmp_path):
    # Every model goes through torch.export in the ONNX test above (the exporter starts from an
    # ExportedProgram); here the two paper models also make the .pt2 save / load round trip.
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    size = small_size(name)
    path = export_model(model, tmp_path / f"{name}.pt2", format="torch_export", image_size=size, batch_size=1)
    assert verify_export(model, path, format="torch_export", image_size=size, batch_size=1) == 0.0


@pytest.mark.parametrize("format,suffix", [("onnx", "onnx"), ("torch_export", "pt2")])
def test_export_batch_dimension_is_dynamic(format, suffix, tmp_path):
    model = create_model("xception_small", num_classes=NUM_CLASSES).eval()
    path = export_model(model, tmp_path / f"small.{suffix}", format=format, image_size=32, batch_size=2)
    assert verify_export(model, path, format=format, image_size=32, batch_size=5) <= 1e-5 * max(1.0, output_scale(model, 32))


def test_export_torchscript_matches_pytorch(tmp_path):
    model = create_model("xception_small", num_classes=NUM_CLASSES).eval()
    path = export_model(model, tmp_path / "small.pt", format="torchscript", image_size=32, batch_size=2)
    assert verify_export(model, path, format="torchscript", image_size=32, batch_size=2) <= 1e-6


def test_export_rejects_unknown_format_and_wrong_suffix(tmp_path):
    model = create_model("xception_small", num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="unknown export format 'tflite'; valid: onnx, openvino, torchscript, torch_export"):
        export_model(model, tmp_path / "a.tflite", format="tflite", image_size=32, batch_size=1)
    with pytest.raises(ValueError, match=r"saved as \.pt2 files.*use a \.pt2 name"):
        export_model(model, tmp_path / "a.pt", format="torch_export", image_size=32, batch_size=1)


def test_compile_inductor_matches_eager_on_small_model():
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=NUM_CLASSES).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-5)


def test_compile_aot_eager_matches_eager_on_paper_model():
    # The inductor backend compiles C++ for minutes on 2 cores; aot_eager still traces the whole
    # graph through dynamo and AOTAutograd, which is where a model would break. One paper model:
    # the variants share its modules, and each compile costs about 15 s of CPU here.
    torch.manual_seed(0)
    model = create_model("xception", num_classes=NUM_CLASSES).eval()
    x = torch.rand(2, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="aot_eager")(x), model(x), rtol=1e-5, atol=1e-6)


def test_cli_export_onnx_verifies_and_prints_the_difference(tmp_path, capsys):
    out = tmp_path / "small.onnx"
    argv = ["export", "--model", "xception_small", "--format", "onnx", "--out", str(out), "--image-size", "32"]
    assert cli_main([*argv, "--num-classes", "10"]) == 0
    assert out.exists()
    assert "max abs difference from PyTorch" in capsys.readouterr().out
    assert cli_main([*argv[:-4], "--format", "torch_export", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "use a .pt2 name" in capsys.readouterr().err


def test_cli_export_openvino_runs_in_openvino_and_matches_pytorch(tmp_path, capsys):
    pytest.importorskip("openvino")
    out = tmp_path / "small.xml"
    argv = ["export", "--model", "xception_small", "--format", "openvino", "--out", str(out), "--image-size", "32",
            "--num-classes", "10", "--batch-size", "2"]
    assert cli_main(argv) == 0
    assert out.exists() and out.with_suffix(".bin").exists()
    printed = capsys.readouterr().out
    assert "(openvino, 32x32)" in printed and float(printed.rsplit(":", 1)[1]) <= 1e-4
    assert cli_main([*argv[:6], str(tmp_path / "small.onnx"), *argv[7:]]) == 2
    assert "use a .xml name" in capsys.readouterr().err


def test_cli_export_rebuilds_a_trained_model_from_its_weight_file(tmp_path, capsys):
    # A Fashion-MNIST run's weights: 1 input channel, 10 classes and a config override that the
    # registry's default lacks; --model is not needed, the file's metadata says it all.
    import onnxruntime

    from xception.models.weights import save_weights

    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, in_channels=1, middle_repeats=1).eval()
    weights = save_weights(model, tmp_path / "run.safetensors", metadata={"class_names": [str(k) for k in range(10)]})
    out = tmp_path / "run.onnx"
    assert cli_main(["export", "--weights", str(weights), "--format", "onnx", "--out", str(out)]) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 1, 28, 28) * 2 - 1
    (onnx_logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(onnx_logits), model(x), rtol=1e-4, atol=1e-5)
    assert cli_main(["export", "--format", "onnx", "--out", str(out)]) == 2
    assert "--model is required" in capsys.readouterr().err


def test_cli_shows_its_own_steps_and_not_the_exporters_info_logs(tmp_path):
    """`xception export` as a user runs it: onnxscript's optimizer logs each pass at INFO, which is
    noise on a terminal; the command's own lines stay, and -v brings everything back."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    argv = [sys.executable, "-m", "xception.cli", "export", "--model", "xception_small", "--format", "onnx",
            "--image-size", "32", "--num-classes", "10", "--out", str(tmp_path / "small.onnx")]
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    quiet = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert "max abs difference from PyTorch" in quiet.stdout
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("INFO onnx")], quiet.stderr
    verbose = subprocess.run([*argv[:3], "-v", *argv[3:]], env=env, capture_output=True, text=True, check=True)
    assert [line for line in verbose.stderr.splitlines() if line.startswith(("INFO onnx", "DEBUG onnx"))]
