"""`xception data frames`: training data from videos. The crops written are those `predict` scores
(its video score is the mean of `predict`'s scores on the written PNGs, 1e-6), the manifest keeps
each video's frames together for `eval --group video` and for training's grouped validation split,
and a run killed with SIGKILL resumes to the files an uninterrupted run on two workers writes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from video_files import FOLDER_CLASSES, detector_weights, face_video_folder, use_eager_torch
from xception.cli import main
from xception.data import DataConfig, build_datasets
from xception.data.split import grouped_split
from xception.inference.session import InferenceSession

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def eager(monkeypatch):
    use_eager_torch(monkeypatch)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return face_video_folder(tmp_path_factory.mktemp("videos"))


def read_manifest(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_frames_writes_crops_and_a_manifest_that_predict_agrees_with(videos, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["data", "frames", str(videos), "--out", str(out), "--frames", "4", "--crop", "faces"]) == 0
    rows = read_manifest(out / "frames.csv")
    assert {r["video"] for r in rows} == {f"{c}/{c[2:]}{n}" for c in FOLDER_CLASSES for n in range(3)}
    written = [r for r in rows if r["path"]]
    assert len(written) >= 20 and all((out / r["path"]).is_file() for r in written)
    assert all(r["path"] == f"{r['class']}/{r['video'].split('/')[1]}_{int(r['frame']):06d}.png" for r in written)
    assert "crops written" in capsys.readouterr().out
    # The video's score from `predict VIDEO` is the mean of the scores of its written crops, each
    # prepared from the PNG as `predict IMAGE` prepares it.
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    predicted = tmp_path / "predicted"
    assert main(["predict", str(videos / "1_fake" / "fake1.mp4"), "--weights", str(weights), "--runtime", "torch",
                 "--crop", "faces", "--frames", "4", "--out", str(predicted)]) == 0
    verdict = json.loads((predicted / "fake1.mp4.verdict.json").read_text())
    session = InferenceSession.open(weights, runtime="torch", device="cpu")
    crops = [out / r["path"] for r in written if r["video"] == "1_fake/fake1"]
    scores = session.probabilities(torch.stack([session.prepare(p) for p in crops])).double()[:, 1]
    assert verdict["scored"] == len(crops)
    assert verdict["probabilities"]["1_fake"] == pytest.approx(float(scores.mean()), abs=1e-6)


def test_group_video_in_eval_and_in_the_training_split(videos, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["data", "frames", str(videos), "--out", str(out), "--frames", "4", "--crop", "faces"]) == 0
    rows = read_manifest(out / "frames.csv")
    # Training: --val-split F --group video holds out whole videos, stratified by class.
    config = DataConfig(source="imagefolder", path=str(out), image_size=32, val_split=0.34, val_group="video",
                        augment=False)
    datasets = build_datasets(config)
    video_of = {os.path.normpath(str(out / r["path"])): r["video"] for r in rows if r["path"]}
    train = {video_of[os.path.normpath(p)] for p, _ in datasets.train.samples}
    val = {video_of[os.path.normpath(p)] for p, _ in datasets.val.samples}
    assert not train & val and len(val) == 2 and {v.split("/")[0] for v in val} == set(FOLDER_CLASSES)
    # Eval: --group video scores each video by the mean of its frames, as `eval --videos` does.
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    common = ["--weights", str(weights), "--runtime", "torch", "--json"]
    capsys.readouterr()
    assert main(["eval", "--data", str(out), "--split", "all", "--group", "video", *common]) == 0
    grouped = json.loads(capsys.readouterr().out)["binary"]
    assert main(["eval", "--videos", str(videos), "--crop", "faces", "--frames", "4", *common]) == 0
    from_videos = json.loads(capsys.readouterr().out)["binary"]
    assert grouped["group"]["count"] == 6
    for level in ("frame", "group"):
        assert grouped[level]["roc_auc"] == pytest.approx(from_videos[level]["roc_auc"], abs=1e-9)


def test_group_split_reads_the_manifest_of_a_folder_named_relatively(videos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "frames", str(videos), "--out", "frames", "--frames", "2"]) == 0
    config = DataConfig(source="imagefolder", path="frames", image_size=32, val_split=0.34, val_group="video",
                        augment=False)
    datasets = build_datasets(config)
    assert len(datasets.train.samples) + len(datasets.val.samples) == 12 and len(datasets.val.samples) == 4


def test_grouped_split_keeps_groups_whole_and_refuses_mixed_groups():
    labels = [0, 0, 0, 1, 1, 1, 1, 0, 0]
    groups = ["a", "a", "b", "c", "c", "d", "d", "e", "e"]
    train, val = grouped_split(labels, groups, fraction=0.5, seed=3)
    assert sorted(train + val) == list(range(9))
    assert not {groups[i] for i in train} & {groups[i] for i in val}
    assert {labels[i] for i in val} == {0, 1}
    with pytest.raises(ValueError, match="group 'a' holds items of two classes"):
        grouped_split([0, 1], ["a", "a"], fraction=0.5, seed=0)


def test_frames_resumes_after_kill_9_to_what_an_uninterrupted_run_writes(videos, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    command = [sys.executable, "-m", "xception.cli", "data", "frames", str(videos), "--frames", "4", "--crop", "faces"]
    subprocess.run([*command, "--out", str(whole), "--workers", "2"], check=True, capture_output=True)
    process = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = killed / "frames.journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_bytes().count(b"\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = journal.read_bytes().count(b"\n")
    assert 2 <= done_before < 6, "the run ended before it could be killed in the middle"
    assert not (killed / "frames.csv").exists()
    resumed = subprocess.run([*command, "--out", str(killed)], check=True, capture_output=True, text=True)
    assert f"({done_before} done before)" in resumed.stdout or f"({done_before + 1} done before)" in resumed.stdout
    assert (killed / "frames.csv").read_text() == (whole / "frames.csv").read_text()
    for row in read_manifest(whole / "frames.csv"):
        if row["path"]:
            assert (killed / row["path"]).read_bytes() == (whole / row["path"]).read_bytes()
    refused = subprocess.run([*command[:-4], "--frames", "3", "--out", str(killed)], capture_output=True, text=True)
    assert refused.returncode == 2 and "was written with other settings" in refused.stderr


def test_frames_takes_the_classes_from_a_csv_list(videos, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for video in sorted(videos.rglob("*.mp4"))[:3]:
        (flat / video.name).write_bytes(video.read_bytes())
    names = sorted(p.name for p in flat.iterdir())
    labels = tmp_path / "labels.csv"
    labels.write_text("video,class\n" + "".join(f"{n},{'1_fake' if n.startswith('fake') else '0_real'}\n"
                                                 for n in names[:2]))
    out = tmp_path / "frames"
    assert main(["data", "frames", str(flat), "--out", str(out), "--frames", "2", "--labels", str(labels)]) == 2
    labels.write_text(labels.read_text() + f"{names[2]},{'1_fake' if names[2].startswith('fake') else '0_real'}\n")
    assert main(["data", "frames", str(flat), "--out", str(out), "--frames", "2", "--labels", str(labels)]) == 0
    rows = read_manifest(out / "frames.csv")
    assert {(r["video"], r["class"]) for r in rows} == {
        (f"{'1_fake' if n.startswith('fake') else '0_real'}/{n[:-4]}", "1_fake" if n.startswith("fake") else "0_real")
        for n in names}
    assert all((out / r["path"]).is_file() and r["path"].startswith(r["class"] + "/") for r in rows)


def test_frames_with_every_face_writes_one_png_per_face(tmp_path):
    import numpy as np
    from PIL import Image

    from video_files import encode_video, lfw_faces, pasted

    faces = lfw_faces(2)
    small = np.asarray(Image.fromarray(faces[1]).resize((60, 60), Image.BICUBIC))
    large = np.asarray(Image.fromarray(faces[0]).resize((130, 130), Image.BICUBIC))
    frame = pasted(pasted(np.full((240, 320, 3), 128, np.uint8), small, x=20, y=20), large, x=180, y=100)
    (tmp_path / "videos" / "0_real").mkdir(parents=True)
    encode_video(tmp_path / "videos" / "0_real" / "two.mp4", [frame] * 2)
    out = tmp_path / "frames"
    assert main(["data", "frames", str(tmp_path / "videos"), "--out", str(out), "--frames", "1", "--crop", "faces",
                 "--face", "all"]) == 0
    rows = read_manifest(out / "frames.csv")
    assert [(r["path"], r["face"]) for r in rows] == [("0_real/two_000000_0.png", "0"), ("0_real/two_000000_1.png", "1")]
    sizes = [Image.open(out / r["path"]).size[0] for r in rows]
    assert sizes == [int(r["box_size"]) for r in rows] and sizes[0] > sizes[1]
