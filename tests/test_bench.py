"""The benchmark harness: contenders, FLOP and memory accounting, and the `xception bench` smoke run."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from xception.bench import BenchResult
from xception.bench.contenders import build_model, parse_contender
from xception.bench.memory import step_peak_memory
from xception.bench.peak import conv_gflop
from xception.bench.steps import make_step
from xception.cli import main
from xception.models.complexity import count_parameters


def test_parse_contender_sources():
    assert parse_contender("xception").source == "xception"
    assert parse_contender("timm:legacy_xception").name == "legacy_xception"
    assert parse_contender("torchvision:inception_v3").source == "torchvision"
    with pytest.raises(ValueError):
        parse_contender("keras:xception")


def test_bench_training_step_is_one_sgd_step_with_momentum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    reference = copy.deepcopy(model)
    step = make_step(model, training=True, batch_size=4, image_size=8, num_classes=5, precision="fp32",
                     channels_last=False, compile=False, device=torch.device("cpu"))
    step()
    step()
    # The same two steps by hand on make_step's batch (its generator: seed 0, images then labels).
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 8, 8, generator=generator) * 2 - 1
    labels = torch.randint(0, 5, (4,), generator=generator)
    optimizer = torch.optim.SGD(reference.parameters(), lr=1e-3, momentum=0.9)
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(reference(images), labels).backward()
        optimizer.step()
    for ours, theirs in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.allclose(ours.float(), theirs.float(), atol=1e-6)


def test_cli_bench_without_timm_names_the_extra_before_any_work(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now fails as if it were not installed
    assert main(["bench", "--iterations", "1", "--repeats", "1"]) == 2
    error = capsys.readouterr().err
    assert "'timm:legacy_xception' needs timm" in error and "pip install 'xception[bench]'" in error


def test_build_model_reference_implementations_have_published_counts():
    # FACTS.md: Xception 22,855,952 trainable parameters; torchvision Inception V3 without the
    # auxiliary tower (BN with gamma) 23,834,568.
    assert count_parameters(build_model(parse_contender("timm:legacy_xception"), num_classes=1000)) == 22_855_952
    inception = build_model(parse_contender("torchvision:inception_v3"), num_classes=1000)
    assert count_parameters(inception) == 23_834_568


def test_conv_gflop_hand_count():
    # 2 FLOPs x (8 * 56 * 56 outputs) x 256 out channels x (256 * 3 * 3) inputs per output.
    assert conv_gflop(8, 256, 256, 56, 3) == pytest.approx(2 * 8 * 56 * 56 * 256 * 256 * 9 / 1e9)


def test_step_peak_memory_cpu_counts_live_activations():
    # conv -> relu without autograd: the conv output (fp32, 4 x 64 x 62 x 62) and the ReLU output
    # are alive together once, then the conv output is freed: peak = 2 maps.
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        peak = step_peak_memory(lambda: model(x), torch.device("cpu"))
    assert peak == 2 * 4 * 64 * 62 * 62 * 4


def test_bench_cli_smoke_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["bench", "--models", "xception_small", "--image-size", "32", "--batch-size", "2",
            "--iterations", "1", "--repeats", "1", "--warmup", "0", "--precision", "fp32",
            "--layout", "channels_last", "--no-compile-ours", "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    rows = {row["mode"]: row for row in result["rows"]}
    assert set(rows) == {"train", "infer"}
    assert rows["infer"]["fused"] and not rows["train"]["fused"]
    assert rows["train"]["gflop_per_image"] == pytest.approx(3 * rows["infer"]["gflop_per_image"])
    assert all(row["images_per_s"] > 0 and row["peak_memory_mb"] > 0 for row in rows.values())
    assert result["peaks"]["fp32"]["peak"] > 0
    assert result["machine"]["torch"] == torch.__version__
    # The JSON reads back into the same result (benchmarks/cpu.py --from-json relies on it).
    again = BenchResult.from_dict(result)
    assert [r.images_per_s for r in again.rows] == [r["images_per_s"] for r in result["rows"]]
    assert again.config.models == ("xception_small",)


@pytest.mark.slow  # two ONNX exports and an NNCF quantization: ~30 s on 2 busy cores
def test_bench_runtime_rows_carry_errors_and_say_what_is_missing(tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    out = tmp_path / "bench.json"
    argv = ["bench", "--models", "xception_small", "onnxruntime:xception_small", "openvino:xception_small",
            "--image-size", "32", "--batch-size", "2", "--iterations", "1", "--repeats", "1", "--warmup", "0",
            "--precision", "fp32", "bf16", "--modes", "train", "infer", "--layout", "channels_last",
            "--no-compile-ours", "--no-peak", "--json", str(out)]
    assert main(argv) == 0
    result = BenchResult.from_dict(json.loads(out.read_text()))
    rows = {(r.mode, r.precision, r.model): r for r in result.rows}
    for runtime in ("onnxruntime", "openvino"):
        row = rows["infer", "fp32", f"{runtime}:xception_small"]
        assert row.runtime == runtime and runtime in row.settings.lower()
        assert row.relative_error < 1e-5  # the same function as eager fp32
    assert rows["infer", "fp32", "xception_small"].relative_error < 1e-5
    skipped = {(s["mode"], s["precision"], s["model"]): s["reason"] for s in result.skipped}
    assert skipped["train", "fp32", "openvino:xception_small"] == "inference only"
    assert skipped["infer", "bf16", "onnxruntime:xception_small"] == "onnxruntime's CPU provider has no bf16 convolutions"


def test_bench_skips_a_runtime_that_is_not_installed_with_the_install_hint(monkeypatch):
    import importlib.util

    from xception.bench.suite import unavailable_reason

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name in ("openvino", "nncf") else real(name))
    reason = unavailable_reason(parse_contender("openvino:xception"), "infer", "fp32", torch.device("cpu"))
    assert reason == "needs openvino: pip install 'xception[deploy]'"
    reason = unavailable_reason(parse_contender("openvino:xception"), "infer", "int8", torch.device("cpu"))
    assert reason == "needs openvino, nncf: pip install 'xception[deploy]'"
    assert unavailable_reason(parse_contender("timm:legacy_xception"), "infer", "int8", torch.device("cpu")) == (
        "int8 is built for this project's models only")
