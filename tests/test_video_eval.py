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


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """10 videos of each class, 2 frames each: the fewest a video threshold is fitted on."""
    return face_video_folder(tmp_path_factory.mktemp("twenty"), videos_per_class=10, frames=2)


def test_calibrate_videos_fits_a_video_threshold_that_predict_decides_by(twenty, folder, tmp_path, capsys):
    import torch

    from xception.metrics.thresholds import choose_threshold
    from xception.models.weights.native import read_metadata

    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    common = ["--runtime", "torch", "--precision", "fp32", "--crop", "faces", "--frames", "2"]
    out = tmp_path / "video.safetensors"
    assert main(["calibrate", "--weights", str(weights), "--videos", str(twenty), "--threshold-rule", "eer",
                 "--crop", "faces", "--frames", "2", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(EER on 20 calibration videos, the mean of their frames)" in printed
    policy = read_metadata(out)["video_decision"]
    assert policy["aggregate"] == "mean" and policy["split_size"] == 20
    # The threshold is the rule's on the videos' scores, as `predict` computes each video's (in fp32, on
    # another runtime: the scores, and so the threshold between two of them, agree to 1e-5).
    predicted = tmp_path / "predicted"
    assert main(["predict", str(twenty), "--weights", str(out), *common, "--out", str(predicted)]) == 0
    verdicts = [json.loads(p.read_text()) for p in sorted(predicted.glob("*.verdict.json"))]
    scores = [v["probabilities"]["1_fake"] for v in verdicts]
    targets = [int(v["video"].split("/")[-2] == "1_fake") for v in verdicts]
    assert policy["threshold"] == pytest.approx(
        choose_threshold(torch.tensor(scores, dtype=torch.float64), torch.tensor(targets), "eer"), abs=1e-5)
    for verdict, score in zip(verdicts, scores, strict=True):
        assert verdict["class"] == ("1_fake" if score >= policy["threshold"] else "0_real")
        assert "video threshold" in verdict["reason"]
    capsys.readouterr()
    assert main(["eval", "--videos", str(twenty), "--weights", str(out), *common, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["video_decision"].startswith("video threshold")
    assert evaluated["verdict_accuracy"] == pytest.approx(np.mean([v["class"] == v["video"].split("/")[-2]
                                                                   for v in verdicts]), abs=1e-12)
    # Another aggregate: the video threshold does not hold for it, and the answer says so.
    assert main(["predict", str(twenty / "1_fake" / "fake0.mp4"), "--weights", str(out), *common,
                 "--aggregate", "max"]) == 0
    assert "the weights' video threshold is for --aggregate mean, not max" in capsys.readouterr().out
    # Too few videos: refused by name, nothing written.
    refused = tmp_path / "refused.safetensors"
    assert main(["calibrate", "--weights", str(weights), "--videos", str(folder), "--crop", "faces", "--frames", "2",
                 "--device", "cpu", "--out", str(refused)]) == 2
    assert "a video threshold is fitted on at least 20 videos with a verdict" in capsys.readouterr().err
    assert not refused.exists()
