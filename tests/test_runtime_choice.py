"""The runtime choice by measurement: calibration, its cache (stale or corrupt: ignored with a
warning), what `predict` and `eval` print, PyTorch's compiled package reused across processes, and
the fallback when the chosen runtime fails."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from xception import create_model
from xception.cli import main
from xception.deploy.choice import choose_runtime
from xception.deploy.measure import Measurement, measure_engines
from xception.deploy.timings import Timings, load_timings, timing_key, timings_path
from xception.models.weights import save_weights

SIZE = 28  # xception_small at 16-32 px: a real calibration in about a minute


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, in_channels=1, width=0.125, middle_repeats=1).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(20)  # predictions that depend on the image
    return model


def write_weights(path) -> str:
    data = {"source": "fashion_mnist", "image_size": SIZE, "in_channels": 1}
    return str(save_weights(tiny_model(), path, metadata={"class_names": [f"garment {k}" for k in range(10)], "data": data}))


def fake_timings(model, *, batch_size: int, figures: dict[tuple[str, str], float]) -> Timings:
    """Timings of `model` under this machine's key with `figures` {(runtime, precision): seconds}."""
    key = timing_key(model, image_size=SIZE, batch_size=batch_size, threads=torch.get_num_threads())
    return Timings(key, "2026-12-06T00:40:00+00:00", tuple(
        Measurement(runtime, precision, f"{runtime} engine", batch_size, (seconds, seconds * 1.1, seconds * 0.9))
        for (runtime, precision), seconds in figures.items()))


def test_measured_runtime_is_the_fastest_installed_and_shows_the_figures():
    timings = fake_timings(tiny_model(), batch_size=1, figures={("torch", "fp32"): 0.004, ("torch", "bf16"): 0.002})
    picked = choose_runtime(torch.device("cpu"), timings=timings, decide="latency")
    assert (picked.runtime, picked.precision, picked.measured) == ("torch", "bf16", True)
    assert picked.reason == ("torch bf16: the fastest measured on this machine (latency, one image; torch bf16 2.0 ms, "
                             "torch fp32 4.0 ms; measured 2026-12-06 00:40 UTC)")
    # A precision asked for: the fastest in it; throughput in images/s for batches.
    timings = fake_timings(tiny_model(), batch_size=8, figures={("torch", "fp32"): 0.5, ("torch", "bf16"): 0.25})
    picked = choose_runtime(torch.device("cpu"), precision="fp32", timings=timings, decide="throughput")
    assert (picked.runtime, picked.precision) == ("torch", "fp32") and "torch fp32 16.0 img/s" in picked.reason


def test_measured_int8_is_chosen_only_where_int8_is_asked_for():
    pytest.importorskip("onnxruntime")
    figures = {("torch", "fp32"): 0.5, ("onnxruntime", "int8"): 0.1, ("torch", "int8"): 0.2}
    timings = fake_timings(tiny_model(), batch_size=8, figures=figures)
    # int8 changes answers: never the default, however fast it measured.
    assert choose_runtime(torch.device("cpu"), timings=timings).precision == "fp32"
    picked = choose_runtime(torch.device("cpu"), precision="int8", timings=timings, decide="throughput")
    assert (picked.runtime, picked.precision, picked.measured) == ("onnxruntime", "int8", True)
    assert "onnxruntime int8 80.0 img/s, torch int8 40.0 img/s" in picked.reason and "but" not in picked.reason
    # Where a float path measured faster than every int8 one (AMX bf16), int8 still runs when asked, and
    # says that it gains nothing here.
    figures = {("torch", "bf16"): 0.05, ("onnxruntime", "int8"): 0.1, ("torch", "int8"): 0.2}
    timings = fake_timings(tiny_model(), batch_size=8, figures=figures)
    picked = choose_runtime(torch.device("cpu"), precision="int8", timings=timings, decide="throughput")
    assert (picked.runtime, picked.precision) == ("onnxruntime", "int8")
    assert picked.reason.endswith("; but torch bf16 160.0 img/s measured faster: int8 gains no speed on this "
                                  "machine, only its accuracy cost")


def test_measured_runtime_skips_a_runtime_no_longer_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))
    timings = fake_timings(tiny_model(), batch_size=1, figures={("openvino", "fp32"): 0.001, ("torch", "fp32"): 0.004})
    picked = choose_runtime(torch.device("cpu"), timings=timings, decide="latency")
    assert picked.runtime == "torch" and "openvino" not in picked.reason


def test_choice_without_calibration_says_it_is_a_preference_and_how_to_measure():
    picked = choose_runtime(torch.device("cpu"), precision="fp32")
    assert not picked.measured and "measured" not in picked.reason.replace("not a measurement", "")
    expected = "the only runtime installed" if picked.runtime == "torch" else "a preference, not a measurement on this"
    assert expected in picked.reason
    if picked.runtime != "torch":
        assert picked.reason.endswith("to measure: xception bench --choose --weights WEIGHTS")


def write_cached(timings: Timings) -> None:
    path = timings_path(timings.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(timings.to_json())


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    """A $XCEPTION_HOME of the test's own: timings cached here reach no other test's choice."""
    monkeypatch.setenv("XCEPTION_HOME", str(tmp_path / "home"))


def test_load_timings_reads_back_what_matches_this_machine_and_software(own_home):
    model = tiny_model()
    timings = fake_timings(model, batch_size=3, figures={("torch", "fp32"): 0.01})
    write_cached(timings)
    assert load_timings(model, image_size=SIZE, batch_size=3) == timings
    assert load_timings(model, image_size=SIZE, batch_size=4) is None  # another batch: not measured


def test_load_timings_ignores_a_stale_calibration_with_a_warning(caplog, own_home):
    model = tiny_model()
    timings = fake_timings(model, batch_size=5, figures={("torch", "fp32"): 0.01})
    stale = Timings({**timings.key, "software": {**timings.key["software"], "torch": "2.13.0"}}, timings.measured_at,
                    timings.measurements)
    write_cached(stale)
    with caplog.at_level(logging.WARNING):
        assert load_timings(model, image_size=SIZE, batch_size=5) is None
    assert f"software (torch 2.13.0 -> {timings.key['software']['torch']})" in caplog.text
    assert "measure again: xception bench --choose" in caplog.text
    write_cached(Timings({**timings.key, "threads": 99}, timings.measured_at, timings.measurements))
    with caplog.at_level(logging.WARNING):
        assert load_timings(model, image_size=SIZE, batch_size=5) is None
    assert f"threads (99 -> {torch.get_num_threads()})" in caplog.text


@pytest.mark.parametrize("text", ["{not json", json.dumps({"key": {}, "measured_at": "x", "measurements": []}),
                                  json.dumps({"measurements": [{"runtime": "torch"}]})])
def test_load_timings_ignores_a_corrupt_file_with_a_warning(text, caplog, own_home):
    model = tiny_model()
    path = timings_path(timing_key(model, image_size=SIZE, batch_size=6, threads=torch.get_num_threads()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert load_timings(model, image_size=SIZE, batch_size=6) is None
    assert "unreadable" in caplog.text and str(path) in caplog.text


def test_measure_engines_interleaves_rounds_and_takes_medians():
    from xception.deploy.engines import Engine

    order = []

    def engine(name: str, seconds: float) -> Engine:
        def run(images):
            order.append(name)
            time.sleep(seconds)
            return images
        return Engine("torch", "fp32", name, run)

    slow, fast = engine("slow", 0.06), engine("fast", 0.03)
    measured = measure_engines([slow, fast], torch.zeros(2, 1, 4, 4), budget_s=0, min_rounds=3, progress=False)
    assert [len(m.seconds) for m in measured] == [3, 3]
    assert 0.055 < measured[0].median_s < 0.09 and 0.025 < measured[1].median_s < 0.05
    assert measured[1].images_per_s == pytest.approx(2 / measured[1].median_s)
    # One warm-up call each; then slow once and fast twice (to fill 50 ms) per round, the round's
    # first engine rotating.
    assert order == ["slow", "fast", "slow", "fast", "fast", "fast", "fast", "slow", "slow", "fast", "fast"]


def predict_output(weights, image, capsys, *extra) -> str:
    """What `predict` writes on stderr (the runtime line); its stdout must hold the prediction."""
    assert main(["predict", str(image), "--weights", weights, "--device", "cpu", *extra]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(str(image)) and len(captured.out.splitlines()) > 1
    return captured.err


@pytest.mark.slow  # a real calibration: an AOTInductor compilation, two ONNX exports, a minute of timing
def test_bench_choose_calibrates_and_predict_and_eval_run_and_show_the_fastest(tmp_path, capsys, caplog,
                                                                                monkeypatch, fashion_mnist):
    weights = write_weights(tmp_path / "w.safetensors")
    image = tmp_path / "item.png"
    Image.fromarray((torch.rand(SIZE, SIZE) * 255).byte().numpy()).save(image)
    # Before: no calibration, and neither output calls the choice measured.
    before = predict_output(weights, image, capsys)
    assert "a preference, not a measurement" in before or "the only runtime installed" in before
    before = eval_runtime(weights, fashion_mnist, capsys)
    assert "a preference, not a measurement" in before or "the only runtime installed" in before

    assert main(["bench", "--choose", "--weights", weights, "--eval-batch-size", "8", "--budget", "3"]) == 0
    printed = capsys.readouterr().out
    assert "| runtime | precision | ms per batch | img/s | engine |" in printed and printed.count("wrote ") == 2
    # The CPU features that decide the int8 and bf16 paths, as found.
    from xception.cpu import cpu_features_text

    assert printed.startswith("CPU: ") and cpu_features_text() in printed.splitlines()[0]
    model = tiny_model()
    timings = load_timings(model, image_size=SIZE, batch_size=1)
    assert timings is not None and len(timings.measurements) >= 1
    assert all(len(m.seconds) >= 3 for m in timings.measurements)
    assert {m.precision for m in timings.measurements} >= {"fp32", "int8"}  # int8 is timed too, for --precision int8
    fastest = min((m for m in timings.measurements if m.precision != "int8"), key=lambda m: m.median_s)
    # predict (one image: latency) runs the fastest measured and says so, with the figures.
    after = predict_output(weights, image, capsys)
    assert f"({fastest.runtime} {fastest.precision}: the fastest measured on this machine (latency" in after
    # --precision int8: the fastest int8 measured.
    fastest_int8 = min((m for m in timings.measurements if m.precision == "int8"), key=lambda m: m.median_s)
    after = predict_output(weights, image, capsys, "--precision", "int8")
    assert f"({fastest_int8.runtime} int8: the fastest measured on this machine (latency" in after
    torch_rows = [m for m in timings.measurements if m.runtime == "torch" and m.precision != "int8"]
    assert all("AOTInductor with freezing" in m.engine for m in torch_rows)  # the path users run (int8: PT2E)
    # eval (a folder: throughput at its batch size) runs the fastest measured at batch 8.
    batches = load_timings(model, image_size=SIZE, batch_size=8)
    fastest = min((m for m in batches.measurements if m.precision != "int8"), key=lambda m: m.median_s)
    after = eval_runtime(weights, fashion_mnist, capsys)
    assert f"({fastest.runtime} {fastest.precision}: the fastest measured on this machine (throughput, batch 8;" in after


def eval_runtime(weights, data, capsys) -> str:
    """The runtime line `eval` prints for the weights on Fashion-MNIST's test images, batch 8."""
    assert main(["eval", "--weights", weights, "--data", str(data), "--batch-size", "8", "--device", "cpu"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("runtime ")]
    return line


FIRST_PREDICTION = """
import sys, time
start = time.perf_counter()
from xception.cli import main
assert main(["predict", sys.argv[1], "--weights", sys.argv[2], "--device", "cpu", "--runtime", "torch",
             "--precision", "fp32"]) == 0
print(f"seconds {time.perf_counter() - start:.2f}", file=sys.stderr)
"""


@pytest.mark.slow  # one AOTInductor compilation (30-60 s on 2 cores), then a second process that reuses it
def test_predict_with_pytorch_compiles_once_and_the_next_process_reuses_the_package(tmp_path):
    weights = write_weights(tmp_path / "w.safetensors")
    image = tmp_path / "item.png"
    Image.fromarray((torch.rand(SIZE, SIZE) * 255).byte().numpy()).save(image)
    env = {**os.environ, "XCEPTION_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}

    def run() -> tuple[str, float]:
        done = subprocess.run([sys.executable, "-c", FIRST_PREDICTION, str(image), weights], capture_output=True,
                              text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        # The compiled package computes what the eager model computes (a 1-channel input, the
        # layout AOTInductor once got wrong): the printed probabilities, to their 4 decimals.
        from xception.models.trained import open_weights

        model, _, _ = open_weights(weights)
        pixels = torch.from_numpy(np.asarray(Image.open(image))).float()[None, None] / 127.5 - 1
        with torch.no_grad():
            expected = sorted(model(pixels).softmax(1)[0].tolist(), reverse=True)
        printed = [float(line.split()[0]) for line in done.stdout.splitlines()[1:]]
        assert printed == pytest.approx(expected[:5], abs=2e-4)  # predict's top-5
        return done.stderr, float(done.stderr.rsplit("seconds ", 1)[1])

    first, first_s = run()
    second, second_s = run()
    assert "AOTInductor with freezing, compiled in" in first and "AOTInductor with freezing, cached:" in second
    packages = list((tmp_path / "home" / "compiled").glob("*.pt2"))
    assert len(packages) == 1
    assert second_s < first_s / 2, (first_s, second_s)
    print(f"time to first prediction: first process {first_s:.1f} s, second {second_s:.1f} s")


def test_compiled_package_is_keyed_by_the_weights_precision_and_size():
    from xception.deploy.compiled import package_path

    model = tiny_model()
    first = package_path(model, precision="fp32", image_size=SIZE)
    assert package_path(model, precision="fp32", image_size=SIZE) == first
    assert package_path(model, precision="bf16", image_size=SIZE) != first
    assert package_path(model, precision="fp32", image_size=SIZE + 4) != first
    with torch.no_grad():
        model.classifier.bias.add_(1)
    assert package_path(model, precision="fp32", image_size=SIZE) != first


def test_predict_falls_back_to_pytorch_in_one_line_when_the_chosen_runtime_fails(tmp_path, capsys, caplog,
                                                                              monkeypatch):
    import xception.deploy.build as build
    import xception.inference.session as session

    real = build.build_engine

    def failing(model, *, runtime, **options):
        if runtime != "torch":
            raise RuntimeError(f"{runtime} converter exploded\nUnsupported operation: SamePadMaxPool2d")
        return real(model, runtime=runtime, **{**options, "torch_path": "eager"})

    monkeypatch.setattr(session, "build_engine", failing)
    monkeypatch.setattr(session.InferenceSession, "timings", lambda self: fake_timings(
        tiny_model(), batch_size=1, figures={("onnxruntime", "fp32"): 0.001, ("torch", "fp32"): 0.004}))
    weights = write_weights(tmp_path / "w.safetensors")
    image = tmp_path / "item.png"
    Image.fromarray((torch.rand(SIZE, SIZE) * 255).byte().numpy()).save(image)
    with caplog.at_level(logging.WARNING):
        err = predict_output(weights, image, capsys, "--top-k", "2")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["onnxruntime could not run this model (Unsupported operation: SamePadMaxPool2d); "
                        "using PyTorch"]
    assert err.startswith("runtime: PyTorch") and "(onnxruntime fp32 failed on this model, so PyTorch; " in err


def test_load_timings_takes_the_nearest_measured_batch_only_when_asked(own_home, tmp_path):
    from xception.inference.session import InferenceSession

    model = tiny_model()
    for batch in (8, 64):
        write_cached(fake_timings(model, batch_size=batch, figures={("torch", "fp32"): 0.01 * batch}))
    assert load_timings(model, image_size=SIZE, batch_size=16) is None  # exactly this batch: none
    nearest = {size: load_timings(model, image_size=SIZE, batch_size=size, nearest=True).key["batch_size"]
               for size in (2, 8, 16, 22, 23, 256)}
    assert nearest == {2: 8, 8: 8, 16: 8, 22: 8, 23: 64, 256: 64}  # by ratio: 23 is nearer 64 (x2.78) than 8 (x2.88)
    # The figures carry their batch, so the reason names the batch that was timed.
    picked = choose_runtime(torch.device("cpu"), timings=load_timings(model, image_size=SIZE, batch_size=16,
                                                                     nearest=True), decide="throughput")
    assert "(throughput, batch 8; torch fp32 100.0 img/s" in picked.reason
    # A session decides latency (predict) by batch 1 alone: a batch's throughput says nothing of it.
    weights = write_weights(tmp_path / "w.safetensors")
    assert InferenceSession.open(weights, device="cpu").timings() is None
    throughput = InferenceSession.open(weights, device="cpu", workload="throughput", batch_size=16).timings()
    assert throughput.key["batch_size"] == 8
    write_cached(fake_timings(model, batch_size=1, figures={("torch", "fp32"): 0.001}))
    assert InferenceSession.open(weights, device="cpu").timings().key["batch_size"] == 1
    assert load_timings(model, image_size=SIZE, batch_size=2, nearest=True).key["batch_size"] == 8  # 1 is latency


def test_serve_and_predict_follow_the_calibration_and_say_so(tmp_path, monkeypatch, caplog, capsys):
    """Before a calibration both say the choice is a preference; after one (cached timings of this
    machine, written as `bench --choose` writes them), serve decides by throughput at the batch
    measured nearest its largest batch and predict by latency at batch 1, each naming the figures."""
    from xception.serve.model import load_served_model

    for module in ("onnxruntime", "openvino"):
        pytest.importorskip(module)
    monkeypatch.setenv("XCEPTION_HOME", str(tmp_path / "home"))
    weights = write_weights(tmp_path / "w.safetensors")
    image = tmp_path / "item.png"
    Image.fromarray((torch.rand(SIZE, SIZE) * 255).byte().numpy()).save(image)
    with caplog.at_level(logging.INFO, logger="xception.serve.model"):
        served = load_served_model(weights, device="cpu", max_batch_size=16)
    before = served.session.choice.reason
    assert "a preference, not a measurement" in before or "the only runtime installed" in before
    assert f"runtime: {served.engine.description} ({before})" in caplog.text
    assert "a preference, not a measurement" in predict_output(weights, image, capsys)

    # Runtimes that need no compilation, so the test stays quick: the ONNX export only.
    model = tiny_model()
    write_cached(fake_timings(model, batch_size=1, figures={("onnxruntime", "fp32"): 0.002, ("openvino", "fp32"): 0.004}))
    write_cached(fake_timings(model, batch_size=32, figures={("onnxruntime", "fp32"): 0.8, ("openvino", "fp32"): 0.4}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xception.serve.model"):
        served = load_served_model(weights, device="cpu", max_batch_size=16)
    after = served.session.choice.reason
    assert after == ("openvino fp32: the fastest measured on this machine (throughput, batch 32; openvino fp32 "
                     "80.0 img/s, onnxruntime fp32 40.0 img/s; measured 2026-12-06 00:40 UTC)")
    assert served.engine.runtime == "openvino" and "a preference" not in caplog.text and after in caplog.text
    # predict, one image: the latency at batch 1, where onnxruntime was the faster.
    assert "(onnxruntime fp32: the fastest measured on this machine (latency, one image; onnxruntime fp32 2.0 ms" in \
        predict_output(weights, image, capsys)
