"""`xception eval --videos DIR`: a folder of videos in two classes (real/, fake/) gives ROC-AUC per
frame and per video equal to scikit-learn's on the scores `xception predict` writes for the same
videos; an unreadable file and a video without a face are named and left out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from video_files import detector_weights, encode_video, lfw_faces, pasted, use_eager_torch
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def eager(monkeypatch):
    use_eager_torch(monkeypatch)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """real/ and fake/, three videos of 4 frames each: LFW faces moving on grey; the fakes' faces
    tinted and noisy. fake/ also holds a video without a face and a file that is not a video."""
    root = tmp_path_factory.mktemp("videos")
    faces = lfw_faces(24)
    rng = np.random.default_rng(0)
    background = np.full((160, 200, 3), 128, np.uint8)
    for label in ("real", "fake"):
        (root / label).mkdir()
        for number in range(3):
            frames = []
            for i in range(4):
                face = faces[(number * 4 + i + (12 if label == "fake" else 0)) % len(faces)].astype(int)
                if label == "fake":
                    face = face + [40, -20, 10] + rng.integers(-25, 25, face.shape)
                frames.append(pasted(background, face.clip(0, 255).astype(np.uint8), x=20 + 15 * i, y=10 + 8 * i))
            encode_video(root / label / f"{label}{number}.mp4", frames, rate=5)
    encode_video(root / "fake" / "empty_room.mp4", [background] * 4, rate=5)
    (root / "fake" / "broken.mp4").write_bytes(b"\x00" * 1000)
    return root


def test_eval_videos_matches_scikit_learn_on_predicts_scores(folder, tmp_path, capsys):
    weights = detector_weights(tmp_path / "w.safetensors")
    common = ["--weights", str(weights), "--runtime", "torch", "--crop", "faces", "--frames", "4"]
    assert main(["eval", "--videos", str(folder), *common, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["no_verdict"] == [str(folder / "fake" / "empty_room.mp4")]
    assert metrics["unreadable"] == [str(folder / "fake" / "broken.mp4")]
    out = tmp_path / "predicted"
    main(["predict", *[str(p) for p in sorted(folder.rglob("*[0-9].mp4"))], *common, "--out", str(out)])
    frame_scores, frame_targets, video_scores, video_targets = [], [], [], []
    for label, target in (("real", 0), ("fake", 1)):
        for number in range(3):
            with open(out / f"{label}{number}.mp4.frames.csv", newline="") as file:
                scores = [float(r["p(fake)"]) for r in csv.DictReader(file) if r["p(fake)"]]
            frame_scores += scores
            frame_targets += [target] * len(scores)
            video_scores.append(json.loads((out / f"{label}{number}.mp4.verdict.json").read_text())["probabilities"]["fake"])
            video_targets.append(target)
    assert metrics["videos"] == 6 and metrics["frames"] == len(frame_scores) >= 20
    assert metrics["binary"]["frame"]["roc_auc"] == pytest.approx(roc_auc_score(frame_targets, frame_scores), abs=1e-9)
    assert metrics["binary"]["group"]["roc_auc"] == pytest.approx(roc_auc_score(video_targets, video_scores), abs=1e-9)
    assert metrics["binary"]["group"]["count"] == 6 and metrics["binary"]["group"]["positives"] == 3


def test_eval_videos_refuses_unknown_class_folders(folder, tmp_path, capsys):
    weights = detector_weights(tmp_path / "w.safetensors")
    assert main(["eval", "--videos", str(folder / "real"), "--weights", str(weights), "--runtime", "torch"]) == 2
    assert "must hold one folder per class of the weights (real, fake)" in capsys.readouterr().err
