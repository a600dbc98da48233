"""A multi-label run's decision policy through the command line: `xception calibrate
--per-class-thresholds` gives each label its own threshold, and `eval` and `predict` decide by them
(eval's micro-averaged metrics at those thresholds equal scikit-learn's on the printed probabilities)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score

from xception.cli import main
from xception.inference.session import InferenceSession
from xception.models.weights.native import read_metadata

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def write_manifest(root, count: int, split: str, rng: np.random.Generator) -> None:
    """`count` 32 px grey images, each with a square of each colour it is labelled with (each label
    in about half of them), and `split`.jsonl listing them."""
    rows = []
    for i in range(count):
        pixels = np.full((32, 32, 3), 128, dtype=np.uint8)
        labels = [name for name in COLOURS if rng.random() < 0.5]
        for name in labels:
            top, left = rng.integers(0, 22, size=2)
            pixels[top:top + 10, left:left + 10] = COLOURS[name]
        path = f"images/{split}_{i:03d}.png"
        Image.fromarray(pixels).save(root / path)
        rows.append(json.dumps({"path": path, "labels": labels}))
    (root / f"{split}.jsonl").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    write_manifest(root, 60, "train", rng)
    write_manifest(root, 40, "val", rng)
    (root / "classes.txt").write_text("\n".join(COLOURS) + "\n")
    run = root / "run"
    threads = torch.get_num_threads()
    assert main(["train", "--threads", "1", "--model", "xception_small", "--set", "model.width=0.125",
                 "--set", "model.middle_repeats=1", "--dataset", "multilabel", "--data", str(root),
                 "--image-size", "32", "--recipe", "finetune_whole", "--epochs", "4", "--batch-size", "15",
                 "--precision", "fp32", "--no-channels-last", "--device", "cpu", "--workers", "0", "--no-progress",
                 "--set", "trackers=[]", "--out", str(run)]) == 0
    torch.set_num_threads(threads)
    return root, run


def test_per_class_thresholds_through_calibrate_eval_and_predict(multilabel_run, capsys):
    root, run = multilabel_run
    out = root / "per_class.safetensors"
    assert main(["calibrate", "--weights", str(run / "weights.safetensors"), "--threshold-rule", "max_f1",
                 "--per-class-thresholds", "--device", "cpu", "--out", str(out)]) == 0
    assert "per-class thresholds (max F1 on 40 validation images; 3 of 3 classes their own)" in capsys.readouterr().out
    decision = read_metadata(out)["decision"]
    assert len(decision["class_thresholds"]) == 3 and all(0 <= t <= 1 for t in decision["class_thresholds"])
    runtime = ["--device", "cpu", "--runtime", "onnxruntime", "--precision", "fp32"]
    assert main(["eval", "--weights", str(out), *runtime, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["examples"] == 40 and metrics["decision"].startswith("per-class thresholds")
    # predict decides every validation image as eval does: its decided labels give eval's F1, and they
    # are the labels whose probability (the session's, unrounded) reaches that label's threshold.
    lines = (root / "val.jsonl").read_text().splitlines()
    files = [str(root / json.loads(line)["path"]) for line in lines]
    truth = np.array([[name in json.loads(line)["labels"] for name in COLOURS] for line in lines])
    assert main(["predict", *files, "--weights", str(out), *runtime, "--top-k", "3"]) == 0
    blocks = re.split(r"\n(?=\S)", capsys.readouterr().out.strip())
    assert all("each >= its per-class thresholds" in block.splitlines()[1] for block in blocks)
    named = [re.match(r"  decision: (.*?)(, probability | \()", block.splitlines()[1])[1] for block in blocks]
    decided = np.array([[name in text.split(", ") for name in COLOURS] for text in named])
    assert metrics["f1"] == pytest.approx(f1_score(truth, decided, average="micro"), abs=1e-12)
    session = InferenceSession.open(out, runtime="onnxruntime", precision="fp32", device="cpu")
    probabilities = session.probabilities(torch.stack([session.prepare(f) for f in files])).numpy()
    assert (decided == (probabilities >= np.array(decision["class_thresholds"]))).all()
