"""`fastest_settings`: the defaults follow the hardware's capabilities and say why."""

from __future__ import annotations

import pytest
import torch

from xception import cpu, runtime


def test_fastest_settings_cpu_bf16_follows_cpu_flags(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    settings = runtime.fastest_settings(torch.device("cpu"), training=True)
    assert settings.precision == "bf16"
    assert settings.autocast_dtype is torch.bfloat16
    assert "bf16" in settings.reason and "training" in settings.reason


def test_fastest_settings_cpu_without_bf16_is_fp32(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    settings = runtime.fastest_settings(torch.device("cpu"), training=False)
    assert settings.precision == "fp32"
    assert settings.autocast_dtype is None
    assert "inference" in settings.reason


def test_fastest_settings_is_channels_last_on_cpu():
    settings = runtime.fastest_settings(torch.device("cpu"), training=True)
    assert settings.channels_last and settings.memory_format is torch.channels_last


def test_runtime_settings_is_frozen():
    settings = runtime.fastest_settings(torch.device("cpu"), training=True)
    with pytest.raises(AttributeError):
        settings.precision = "fp32"  # type: ignore[misc]


@pytest.mark.slow
def test_compile_model_inference_with_freezing_matches_eager():
    from xception.models import create_model
    from xception.models.fuse import fuse_for_inference

    torch.manual_seed(0)
    model = fuse_for_inference(create_model("xception_small", num_classes=10))
    x = torch.randn(2, 3, 32, 32)
    compiled = runtime.compile_model(model, training=False)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_retain_freed_memory_stops_large_frees_from_unmapping():
    import resource
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    from xception.runtime import retain_freed_memory

    def faults_for_reallocations() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            block = torch.empty(64 * 2**20, dtype=torch.uint8)  # 64 MiB: above glibc's mmap threshold
            block.fill_(1)  # touch every page
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    # 64 MiB is 16,384 pages of 4 KiB: an mmap per allocation faults them all in every time.
    assert retain_freed_memory() is True
    faults_for_reallocations()  # the first allocation grows the heap once
    assert faults_for_reallocations() < 16_384


def test_autocast_computes_in_each_precision_dtype():
    a = torch.randn(8, 8)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with runtime.autocast("cpu", runtime.autocast_dtype(precision)):
            assert (a @ a).dtype == dtype
    with pytest.raises(ValueError, match="unknown precision 'fp8'; valid: fp32, bf16, fp16"):
        runtime.autocast_dtype("fp8")


def test_check_precision_fp16_needs_cuda_and_says_what_to_use():
    runtime.check_precision("fp16", "cuda")
    runtime.check_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU.*device is cpu; use --precision bf16 or fp32"):
        runtime.check_precision("fp16", "cpu")


def test_check_precision_int8_is_cpu_inference_only():
    runtime.check_precision("int8", "cpu", inference=True)
    with pytest.raises(ValueError, match="int8 is post-training quantization, for inference only"):
        runtime.check_precision("int8", "cpu")
    with pytest.raises(ValueError, match="int8 runs on the CPU here, but the device is cuda; use --device cpu"):
        runtime.check_precision("int8", "cuda", inference=True)


def test_training_runtime_reason_names_what_was_chosen_and_what_was_configured():
    from xception.data.config import DataConfig
    from xception.train.config import TrainConfig
    from xception.train.fit import resolve_runtime

    cpu, data = torch.device("cpu"), DataConfig("fashion_mnist", None, 28)
    default = resolve_runtime(TrainConfig(data), cpu)
    assert default.reason.startswith(f"precision={default.precision} (chosen), channels_last=True (chosen)")
    fp32 = resolve_runtime(TrainConfig(data, precision="fp32"), cpu)
    assert fp32.precision == "fp32" and fp32.reason.startswith("precision=fp32, channels_last=True (chosen)")
    assert "(chosen): the defaults for training on a CPU" in fp32.reason  # the bf16 default explains only the chosen ones
    configured = resolve_runtime(TrainConfig(data, precision="fp32", channels_last=False, compile=False), cpu)
    assert configured.reason == "precision=fp32, channels_last=False, compile=False: as configured"


@pytest.mark.parametrize("limit,vnni,bf16,avx512", [
    ("AVX2", False, False, False), ("avx512_core", False, False, True), ("AVX512_CORE_VNNI", True, False, True),
    ("AVX512_CORE_BF16", True, True, True), ("AVX2_VNNI", True, False, False), ("", True, True, True),
])
def test_cpu_flags_follow_onednns_isa_cap(limit, vnni, bf16, avx512, monkeypatch):
    # A Sapphire Rapids' flags (AMX), capped as oneDNN caps them with ONEDNN_MAX_CPU_ISA: the project
    # must decide as oneDNN computes, or it skips the 7-bit remedy that a capped oneDNN needs.
    flags = frozenset("sse4_2 avx fma avx2 avx_vnni avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 "
                      "amx_bf16 amx_int8 amx_tile".split())
    monkeypatch.setattr(cpu, "hardware_flags", lambda: flags)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    cpu.cpu_flags.cache_clear()
    try:
        assert cpu.cpu_has_vnni() is vnni
        assert cpu.cpu_has_native_bf16() is bf16
        assert ("avx512f" in cpu.cpu_flags()) is avx512
        assert "avx2" in cpu.cpu_flags()
        text = cpu.cpu_features_text()
        assert ("no VNNI" in text) is not vnni and (f"ONEDNN_MAX_CPU_ISA={limit.upper()}" in text) is bool(limit)
    finally:
        cpu.cpu_flags.cache_clear()


def test_nhwc_weight_gradient_hazards_are_the_narrow_strided_1x1_convolutions():
    from xception import create_model

    narrow = create_model("xception_small", num_classes=2, in_channels=1, width=0.125, middle_repeats=1)
    assert runtime.nhwc_weight_gradient_hazards(narrow) == ["entry_flow.block2.shortcut.conv"]  # 8 -> 16, stride 2
    wider = create_model("xception_small", num_classes=2, in_channels=1, width=0.25, middle_repeats=1)
    assert runtime.nhwc_weight_gradient_hazards(wider) == []  # 16 input channels: a full block
    assert runtime.nhwc_weight_gradient_hazards(create_model("xception", num_classes=10)) == []


@pytest.mark.parametrize("layout", ["default", "asked"])
def test_a_narrow_model_trains_in_fp32_without_channels_last_and_refuses_it_when_asked(layout, tmp_path):
    """In a process of its own: where the guard failed, oneDNN's out-of-bounds write (odd batches of
    15 here) would take the test's process with it."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tiny_image_folder import train_argv, write_image_folder

    data = write_image_folder(tmp_path / "data", per_class={"train": 15, "val": 6})
    argv = train_argv(data, tmp_path / "run", "--batch-size", "15", "--steps", "3", "--workers", "0",
                      *(["--channels-last"] if layout == "asked" else []))
    src = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, "-m", "xception.cli", *argv], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": src})
    if layout == "asked":
        assert done.returncode == 2, done.stderr[-2000:]
        assert "--channels-last: oneDNN computes the weight gradient of a strided 1x1 convolution" in done.stderr
        assert "train it with --no-channels-last" in done.stderr
        return
    assert done.returncode == 0, done.stderr[-3000:]
    assert "channels_last off for this model: oneDNN" in done.stderr and "entry_flow.block2.shortcut.conv" in done.stderr
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["runtime"]
    assert recorded["channels_last"] is False and "channels_last off (oneDNN#6035" in recorded["reason"]
