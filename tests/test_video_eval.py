"""`xception eval --videos DIR`: a folder of videos in two classes (0_real/, 1_fake/) gives ROC-AUC per
frame and per video equal to scikit-learn's on the scores `xception predict` writes for the same
videos; an unreadable file and a video without a face are named and left out."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from video_files import FOLDER_CLASSES, detector_weights, encode_video, face_video_folder, use_eager_torch
from xception.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def eager(monkeypatch):
    use_eager_torch(monkeypatch)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """0_real/ and 1_fake/, three videos of 4 frames each: LFW faces moving on grey; the fakes' faces
    tinted and noisy. 1_fake/ also holds a video without a face and a file that is not a video."""
    root = face_video_folder(tmp_path_factory.mktemp("videos"))
    background = np.full((160, 200, 3), 128, np.uint8)
    encode_video(root / "1_fake" / "empty_room.mp4", [background] * 4, rate=5)
    (root / "1_fake" / "broken.mp4").write_bytes(b"\x00" * 1000)
    return root


def test_eval_videos_matches_scikit_learn_on_predicts_scores(folder, tmp_path, capsys):
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    common = ["--weights", str(weights), "--runtime", "torch", "--crop", "faces", "--frames", "4"]
    assert main(["eval", "--videos", str(folder), *common, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["no_verdict"] == [str(folder / "1_fake" / "empty_room.mp4")]
    assert metrics["unreadable"] == [str(folder / "1_fake" / "broken.mp4")]
    out = tmp_path / "predicted"
    main(["predict", *[str(p) for p in sorted(folder.rglob("*[0-9].mp4"))], *common, "--out", str(out)])
    frame_scores, frame_targets, video_scores, video_targets = [], [], [], []
    for label, target in (("real", 0), ("fake", 1)):
        for number in range(3):
            with open(out / f"{label}{number}.mp4.frames.csv", newline="") as file:
                scores = [float(r["p(1_fake)"]) for r in csv.DictReader(file) if r["p(1_fake)"]]
            frame_scores += scores
            frame_targets += [target] * len(scores)
            video_scores.append(json.loads((out / f"{label}{number}.mp4.verdict.json").read_text())["probabilities"]["1_fake"])
            video_targets.append(target)
    assert metrics["videos"] == 6 and metrics["frames"] == len(frame_scores) >= 20
    assert metrics["binary"]["frame"]["roc_auc"] == pytest.approx(roc_auc_score(frame_targets, frame_scores), abs=1e-9)
    assert metrics["binary"]["group"]["roc_auc"] == pytest.approx(roc_auc_score(video_targets, video_scores), abs=1e-9)
    assert metrics["binary"]["group"]["count"] == 6 and metrics["binary"]["group"]["positives"] == 3


def test_eval_videos_refuses_unknown_class_folders(folder, tmp_path, capsys):
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    assert main(["eval", "--videos", str(folder / "0_real"), "--weights", str(weights), "--runtime", "torch"]) == 2
    assert "must hold one folder per class of the weights (0_real, 1_fake)" in capsys.readouterr().err
