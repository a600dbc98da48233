"""`xception predict VIDEO`: per-frame probabilities, one verdict per video through the weights'
decision policy, the per-frame table and the verdict written with --out, and clear lines for a
video without a face and for a file that is not a video, the run going on with the next."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from video_files import detector_weights, encode_video, lfw_faces, pasted, use_eager_torch
from xception.cli import main
from xception.data.video import read_frames
from xception.inference.session import InferenceSession

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def eager(monkeypatch):
    use_eager_torch(monkeypatch)
THRESHOLD = 0.45


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return detector_weights(tmp_path_factory.mktemp("weights") / "w.safetensors", threshold=THRESHOLD)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """faces.mp4: 10 frames, a moving LFW face in each but frames 3 and 7; blank.mp4: no face at all."""
    root = tmp_path_factory.mktemp("videos")
    background = np.full((200, 240, 3), 128, np.uint8)
    faces = [f for f in lfw_faces(12) if f is not None][:10]
    frames = [pasted(background, face, x=10 * i, y=5 * i) for i, face in enumerate(faces)]
    frames[3] = frames[7] = background
    return encode_video(root / "faces.mp4", frames, rate=10), encode_video(root / "blank.mp4", [background] * 6)


def read_table(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_predict_video_scores_faces_and_decides_the_video(weights, videos, tmp_path, capsys):
    faces, _ = videos
    out = tmp_path / "out"
    assert main(["predict", str(faces), "--weights", str(weights), "--runtime", "torch", "--crop", "faces",
                 "--frames", "10", "--out", str(out)]) == 0
    rows = read_table(out / "faces.mp4.frames.csv")
    assert [int(r["frame"]) for r in rows] == list(range(10))
    assert [float(r["time"]) for r in rows] == pytest.approx([i / 10 for i in range(10)])
    faceless = [int(r["frame"]) for r in rows if r["class"] == "no face"]
    scored = [r for r in rows if r["class"] != "no face"]
    assert 3 in faceless and 7 in faceless and len(scored) >= 6
    assert all(r["p(fake)"] == "" and r["box_size"] == "" for r in rows if r["class"] == "no face")
    # Each row's probabilities are what the session gives on its crop saved as a PNG (as `predict`
    # prepares an image file), the crop cut from the frame PyAV decodes.
    session = InferenceSession.open(weights, runtime="torch", device="cpu")
    decoded = {f.index: f.image for f in read_frames(faces, [int(r["frame"]) for r in scored])}
    for row in scored:
        x, y, size = (int(row[k]) for k in ("box_x", "box_y", "box_size"))
        png = tmp_path / f"crop{row['frame']}.png"
        Image.fromarray(decoded[int(row["frame"])][y:y + size, x:x + size]).save(png)
        expected = session.probabilities(session.prepare(png)[None])[0].double()
        assert [float(row["p(real)"]), float(row["p(fake)"])] == pytest.approx(expected.tolist(), abs=1e-6)
        assert row["class"] == ("fake" if expected[1] >= THRESHOLD else "real")
    # The video's score: the mean of its frames', decided at the weights' threshold.
    verdict = json.loads((out / "faces.mp4.verdict.json").read_text())
    fake = np.mean([float(r["p(fake)"]) for r in scored])
    assert verdict["probabilities"]["fake"] == pytest.approx(fake, abs=1e-6)
    assert verdict["class"] == ("fake" if fake >= THRESHOLD else "real")
    assert verdict["scored"] == len(scored) and verdict["frames_read"] == 10 and verdict["aggregate"] == "mean"
    printed = capsys.readouterr().out
    assert f"verdict: {verdict['class']}" in printed and f"{len(faceless)} without a face" in printed


def test_predict_video_with_an_ensemble_scores_each_face_with_the_mean_of_its_members(weights, videos, tmp_path,
                                                                                       capsys):
    """Two members that prepare the crops differently (32 and 40 px): each frame's probabilities are
    the mean of what each member alone gives that frame, and the ensemble (no file, so no policy of
    its own) decides the video by argmax."""
    faces, _ = videos
    other = detector_weights(tmp_path / "other.safetensors", threshold=THRESHOLD, seed=1, image_size=40)
    options = ["--runtime", "torch", "--crop", "faces", "--frames", "10"]
    tables = {}
    for name, given in (("first", [weights]), ("other", [other]), ("ensemble", [weights, other])):
        argv = [arg for w in given for arg in ("--weights", str(w))]
        assert main(["predict", str(faces), *argv, *options, "--out", str(tmp_path / name)]) == 0
        tables[name] = read_table(tmp_path / name / "faces.mp4.frames.csv")
    assert "ensemble of 2" in capsys.readouterr().err
    scored = [i for i, row in enumerate(tables["ensemble"]) if row["class"] != "no face"]
    assert len(scored) >= 6 and scored == [i for i, row in enumerate(tables["first"]) if row["class"] != "no face"]
    first, second = ([float(t[i]["p(fake)"]) for i in scored] for t in (tables["first"], tables["other"]))
    assert max(abs(a - b) for a, b in zip(first, second, strict=True)) > 1e-3  # the members differ
    ensemble = [float(tables["ensemble"][i]["p(fake)"]) for i in scored]
    assert ensemble == pytest.approx([(a + b) / 2 for a, b in zip(first, second, strict=True)], abs=1e-6)
    verdict = json.loads((tmp_path / "ensemble" / "faces.mp4.verdict.json").read_text())
    assert verdict["probabilities"]["fake"] == pytest.approx(np.mean(ensemble), abs=1e-6)
    assert "(argmax)" in verdict["reason"]


@pytest.mark.parametrize("how", ["median", "max", "confident"])
def test_predict_video_aggregates(weights, videos, tmp_path, how):
    faces, _ = videos
    out = tmp_path / how
    assert main(["predict", str(faces), "--weights", str(weights), "--runtime", "torch", "--frames", "10",
                 "--aggregate", how, "--out", str(out)]) == 0
    fake = np.array([float(r["p(fake)"]) for r in read_table(out / "faces.mp4.frames.csv")])
    assert len(fake) == 10  # --crop none: every frame is scored, faces or not
    # With 10 frames, none above 0.8 and none below 0.2 (an untrained model), "confident" is the mean.
    expected = {"median": np.median(fake), "max": fake.max(), "confident": fake.mean()}[how]
    assert 0.2 < fake.min() and fake.max() < 0.8
    verdict = json.loads((out / "faces.mp4.verdict.json").read_text())
    assert verdict["probabilities"]["fake"] == pytest.approx(expected, abs=1e-6)


def test_video_without_a_face_gets_no_verdict(weights, videos, tmp_path, capsys):
    _, blank = videos
    out = tmp_path / "out"
    assert main(["predict", str(blank), "--weights", str(weights), "--runtime", "torch", "--crop", "faces",
                 "--out", str(out)]) == 1
    assert "no verdict: no face was found in any of the 6 frames read" in capsys.readouterr().out
    verdict = json.loads((out / "blank.mp4.verdict.json").read_text())
    assert verdict["class"] is None and verdict["probabilities"] is None and verdict["scored"] == 0
    assert [r["class"] for r in read_table(out / "blank.mp4.frames.csv")] == ["no face"] * 6


def test_a_folder_run_names_a_bad_file_and_goes_on(weights, videos, tmp_path, capsys):
    faces, _ = videos
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a_broken.mp4").write_bytes(b"\x00" * 4096)
    (folder / "b_faces.mp4").write_bytes(faces.read_bytes())
    assert main(["predict", str(folder), "--weights", str(weights), "--runtime", "torch", "--frames", "4"]) == 1
    captured = capsys.readouterr()
    assert "a_broken.mp4 is not a video that FFmpeg can read" in captured.err
    assert "b_faces.mp4" in captured.out and "verdict:" in captured.out
