"""benchmarks/gpu.py (its time budget, its whole code path on the CPU), benchmarks/cpu_breakdown.py and benchmarks/mosaic_lr.py."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_estimate_seconds_uses_eager_time_and_measured_compile_time():
    gpu = _load("gpu")
    train_compiled = gpu.Phase("compiled training", "train", True)
    # Nothing measured yet: the assumed compile time per model.
    assert gpu.estimate_seconds(train_compiled, {}, {}, 3) == pytest.approx(3 * gpu.ASSUMED_COMPILE_S["train"])
    # Eager training took 50 s and an earlier compiled training phase measured 20 s per model.
    assert gpu.estimate_seconds(train_compiled, {"eager training": 50.0}, {"train": 20.0}, 3) == pytest.approx(120.0)
    # A measured inference compile says nothing about training's: the assumption stands.
    assert gpu.estimate_seconds(train_compiled, {}, {"infer": 5.0}, 3) == pytest.approx(3 * gpu.ASSUMED_COMPILE_S["train"])


def test_gpu_smoke_on_cpu_writes_markdown_and_json_within_budget(tmp_path, monkeypatch):
    gpu = _load("gpu")
    # Compilation assumed to take longer than the budget: the compiled phases are skipped, and
    # the output says so.
    monkeypatch.setattr(gpu, "ASSUMED_COMPILE_S", {"train": 1e6, "infer": 1e6})
    assert gpu.main(["--device", "cpu", "--smoke", "--out", str(tmp_path), "--time-budget", "600"]) == 0
    text = (tmp_path / "gpu.md").read_text()
    assert "## eager training" in text and "## eager inference" in text
    assert "Skipped to stay within the time budget: compiled training" in text
    payload = json.loads((tmp_path / "gpu.json").read_text())
    assert [p["phase"] for p in payload["phases"]] == ["eager training", "eager inference"]
    assert all(row["precision"] == "bf16" for p in payload["phases"] for row in p["result"]["rows"])


def test_gpu_phases_option_runs_only_the_named_phases(tmp_path):
    gpu = _load("gpu")
    assert gpu.main(["--device", "cpu", "--smoke", "--out", str(tmp_path), "--phases", "eager inference"]) == 0
    payload = json.loads((tmp_path / "gpu.json").read_text())
    assert [p["phase"] for p in payload["phases"]] == ["eager inference"] and payload["skipped"] == []
    with pytest.raises(SystemExit):
        gpu.main(["--device", "cpu", "--smoke", "--out", str(tmp_path), "--phases", "eager inference,warp speed"])


def test_cpu_breakdown_smoke_writes_the_ceiling_table(tmp_path, one_thread):
    breakdown = _load("cpu_breakdown")
    assert breakdown.main(["--smoke", "--precisions", "fp32", "--out", str(tmp_path / "b")]) == 0
    payload = json.loads((tmp_path / "b.json").read_text())
    assert [(r["mode"], r["model"]) for r in payload["rows"]][:3] == [("train", m) for m in ("xception", "timm:legacy_xception", "torchvision:inception_v3")]
    assert {r["mode"] for r in payload["rows"]} == {"train", "infer"}
    text = (tmp_path / "b.md").read_text()
    assert "| train | fp32 | `xception` |" in text and "| infer | fp32 | `timm:legacy_xception` | " in text and "1.30x" in text and "`timm:legacy_xception` |" in text and "1.40x" in text and "left for the rest" in text


def test_cpu_rewrite_from_json_keeps_the_hand_written_notes(tmp_path):
    cpu = _load("cpu")
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# old tables\n\n## Notes\n\n- a note a person wrote\n")
    assert cpu.main(["--from-json", str(ROOT / "benchmarks/results/cpu.json"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "# old tables" not in text and "## Against issue 4's bars" in text
    assert text.endswith("## Notes\n\n- a note a person wrote\n")


@pytest.mark.slow  # two AOTInductor compilations, ONNX exports, NNCF and PT2E: a few minutes on 2 busy cores
def test_deploy_smoke_runs_every_engine_users_get(tmp_path, one_thread):
    for module in ("onnxruntime", "openvino", "nncf", "torchao"):
        pytest.importorskip(module)
    deploy = _load("deploy")
    assert deploy.main(["--smoke", "--threads", "1", "--out", str(tmp_path / "deploy")]) == 0
    payload = json.loads((tmp_path / "deploy.json").read_text())
    rows = {(r["engine"], r["precision"]): r for r in payload["rows"]}
    expected = {("PyTorch eager", "fp32"), ("PyTorch AOTInductor", "fp32"), ("onnxruntime", "fp32"),
                ("OpenVINO", "fp32"), ("PyTorch PT2E", "int8"), ("OpenVINO NNCF", "int8"), ("onnxruntime QDQ", "int8")}
    if payload["machine"]["native_bf16"]:
        expected |= {("PyTorch eager", "bf16"), ("PyTorch AOTInductor", "bf16"), ("OpenVINO", "bf16")}
    assert expected <= set(rows)
    assert all(rows[key]["relative_error"] < 1e-4 for key in expected if key[1] == "fp32")
    assert "AOTInductor with freezing" in rows["PyTorch AOTInductor", "fp32"]["settings"]
    # All engines share their rounds: one each here.
    assert {len(rows[key]["seconds"]) for key in expected} == {1}
    text = (tmp_path / "deploy.md").read_text()
    assert "## The calibrated choice" in text and "the fastest measured on this machine" in text
    assert "| int8 (" in text and "Load average" in text
    # No check divides a row by itself.
    for line in text.split("## Checks (issues 22 and 26)")[1].splitlines():
        if line.startswith("| ") and " / " in line:
            left, right = line.split("|")[1].split(" / ")
            assert left.split("(", 1)[-1] != right.split("(", 1)[-1], line


def test_explain_pointing_smoke_writes_the_report(tmp_path, fashion_mnist):
    # The whole pipeline of benchmarks/explain_pointing.py on a tiny run (the figures mean nothing here;
    # tests/test_explain_pointing.py checks the pointing accuracy on a briefly trained model).
    pointing = _load("explain_pointing")
    assert pointing.main(["--smoke", "--out", str(tmp_path / "report"), "--run-dir", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "report/pointing.json").read_text())
    assert [row["method"] for row in results["rows"]] == ["cam", "gradcam", "gradcam++", "scorecam"]
    assert all(0 <= row["hits"] <= row["count"] for row in results["rows"])
    text = (tmp_path / "report/README.md").read_text()
    assert "| gradcam | exit_flow.block9 | 40 |" in text and "benchmarks/explain_pointing.py --smoke" in text
    assert (tmp_path / "report/pointing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_pointing_committed_report_is_what_its_figures_render():
    pointing = _load("explain_pointing")
    committed = ROOT / "reports/explain_pointing"
    results = json.loads((committed / "pointing.json").read_text())
    assert (committed / "README.md").read_text() == pointing.render(results)
    gradcam = next(row for row in results["rows"] if row["method"] == "gradcam")
    assert gradcam["count"] == 1000 and gradcam["layer"] == "exit_flow.block9" and gradcam["accuracy"] >= 0.9


def test_mosaic_lr_chooses_the_best_mean_over_seeds_and_never_a_diverged_rate():
    mosaic_lr = _load("mosaic_lr")
    runs = [{"lr": 0.4, "val_miou": 0.50}, {"lr": 0.4, "val_miou": 0.60},  # mean 0.55
            {"lr": 0.8, "val_miou": 0.58}, {"lr": 0.8, "val_miou": 0.54},  # mean 0.56: the best
            {"lr": 1.6, "val_miou": 0.70}, {"lr": 1.6, "val_miou": None}]  # one seed diverged
    chosen, by_lr = mosaic_lr.choose(runs, [0.4, 0.8, 1.6])
    assert chosen == 0.8 and by_lr == pytest.approx({0.4: 0.55, 0.8: 0.56, 1.6: None})
    with pytest.raises(RuntimeError, match="every learning rate diverged"):
        mosaic_lr.choose([{"lr": 0.4, "val_miou": None}], [0.4])


def test_mosaic_lr_tiny_sweep_validates_on_held_out_items_and_tests_the_choice(tmp_path, fashion_mnist):
    mosaic_lr = _load("mosaic_lr")
    assert mosaic_lr.main(["--lrs", "0.4", "0.8", "--train-size", "16", "--val-size", "8", "--epochs", "1",
                           "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")]) == 0
    results = json.loads((tmp_path / "out/mosaic_lr.json").read_text())
    assert [(r["lr"], r["val_examples"], r["trained_here"]) for r in results["runs"]] == [(0.4, 8, True), (0.8, 8, True)]
    assert results["chosen_lr"] in (0.4, 0.8) and results["preset"]["data"]["val_split"] == 0.1
    # The test mosaics tile Fashion-MNIST's 10,000 test images, the validation mosaics its training images.
    assert [(t["examples"], t["source_items"]) for t in results["test"]] == [(8, 10_000)]
    assert "Chosen on validation: **lr" in (tmp_path / "out/mosaic_lr.md").read_text()


@pytest.mark.slow  # an ONNX export of xception, its int8 quantization and two profiled sessions: ~30 s
def test_int8_profile_onnxruntime_splits_each_runtime_by_kind_of_layer(tmp_path, one_thread, monkeypatch):
    for module in ("onnxruntime", "openvino"):
        pytest.importorskip(module)
    profile = _load("int8_profile_onnxruntime")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    out = tmp_path / "profile"
    assert profile.main(["--image-size", "64", "--batch-size", "2", "--runs", "1", "--threads", "1",
                         "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    int8, bf16 = result["onnxruntime_int8_ms"], result["openvino_bf16_ms"]
    # Xception's three kinds of convolution are found in both runtimes' profiles, and carry their time.
    for times in (int8, bf16):
        assert set(profile.KINDS) <= set(times) and all(times[kind] > 0 for kind in profile.KINDS)
        assert sum(times[kind] for kind in profile.KINDS) > 0.5 * sum(times.values())
    assert "QLinearConv" not in int8  # every int8 convolution was given its kind
    assert "| pointwise |" in out.with_suffix(".md").read_text()
    assert not list((tmp_path / "cwd").iterdir())  # onnxruntime's profile file stays out of the working directory
