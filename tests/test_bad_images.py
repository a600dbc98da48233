"""`--bad-images error|skip` through the command line, on an image folder with an empty and a
truncated file, read by a DataLoader worker: `error` stops with one line naming the file, `skip`
leaves the files out, logs each once, counts them in metrics.jsonl, final.json and `xception eval`,
and stops past `--bad-image-fraction`."""

import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 training images (one of them empty) and 6 validation images (one truncated), 2 classes."""
    root = tmp_path_factory.mktemp("bad_folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 3)):
        for label, level in (("dark", 60), ("light", 190)):
            (root / split / label).mkdir(parents=True)
            for i in range(count - (label == "light")):
                pixels = (level + rng.normal(0, 20, (20, 20))).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    (root / "train" / "light" / "broken.png").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(buffer, format="png")
    (root / "val" / "light" / "cut.png").write_bytes(buffer.getvalue()[:60])
    return root


def train_argv(folder, out, *extra):
    return ["train", "--model", "xception_small", "--set", "model.width=0.125", "--set", "model.middle_repeats=1",
            "--dataset", "imagefolder", "--data", str(folder), "--image-size", "16", "--in-channels", "1",
            "--recipe", "fashion_mnist_demo", "--steps", "6", "--batch-size", "4", "--precision", "fp32",
            "--device", "cpu", "--workers", "1", "--no-progress", "--set", "tensorboard=false", "--out", str(out),
            *extra]


@pytest.fixture(scope="module")
def skipped_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "skip"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("xception.data.bad_images").addHandler(handler)
    try:
        status = main(train_argv(folder, out, "--bad-images", "skip", "--bad-image-fraction", "0.2"))
    finally:
        logging.getLogger("xception.data.bad_images").removeHandler(handler)
    return status, out, [r.getMessage() for r in records]


@pytest.mark.slow
def test_bad_images_error_is_the_default_and_names_the_file(folder, tmp_path, capsys):
    assert main(train_argv(folder, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"xception train: error: cannot read image {folder / 'train/light/broken.png'}: the file "
                       "is empty (0 bytes); replace or delete the file, or pass --bad-images skip to leave it out")
    assert not any("Traceback" in line for line in err)


@pytest.mark.slow
def test_bad_images_skip_logs_each_file_once_and_counts_them(skipped_run, folder):
    status, out, messages = skipped_run
    assert status == 0
    # 12 training images, 4 a step: 3 steps an epoch, 2 epochs, so broken.png came up twice.
    assert [m for m in messages if "broken.png" in m] == [
        f"skipping unreadable image {folder / 'train/light/broken.png'}: the file is empty (0 bytes)"]
    assert len([m for m in messages if "cut.png" in m]) == 1
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in evals if row["kind"] == "eval"]
    assert [(r["step"], r["examples"], r["bad_images"], r["train_bad_images"]) for r in evals] == [
        (3, 5, 1, 1), (6, 5, 1, 1)]
    final = json.loads((out / "final.json").read_text())
    assert (final["metrics"]["bad_images"], final["metrics"]["train_bad_images"]) == (1, 1)


def test_bad_images_skip_stops_past_the_fraction(folder, tmp_path, capsys):
    assert main(train_argv(folder, tmp_path / "run", "--bad-images", "skip", "--bad-image-fraction", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xception train: error: 1 unreadable image(s) in the training split, more than "
                              "--bad-images skip allows (0, a fraction 0 of 12; first: ")
    assert err[-1].endswith("broken.png): check the disk and the data, or allow more with --bad-image-fraction")


def test_eval_bad_images_error_names_the_file_read_by_a_worker(skipped_run, folder, capsys):
    _, out, _ = skipped_run
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"xception eval: error: cannot read image {folder / 'val/light/cut.png'}: ")
    assert "Traceback" not in err and "worker" not in err


def test_eval_bad_images_skip_counts_them(skipped_run, capsys):
    _, out, _ = skipped_run
    assert main(["eval", "--weights", str(out / "weights.safetensors"), "--device", "cpu", "--json",
                 "--bad-images", "skip", "--bad-image-fraction", "0.2"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    final = json.loads((out / "final.json").read_text())["metrics"]
    assert (metrics["examples"], metrics["bad_images"]) == (5, 1)
    assert metrics["top1"] == pytest.approx(final["top1"])
