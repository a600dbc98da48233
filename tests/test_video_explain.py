"""`xception explain VIDEO`: one contact sheet per video of the maps of its faces, each map the one
`xception explain` draws for the same crop saved as a PNG, for the class `predict` decides."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from video_files import FOLDER_CLASSES, detector_weights, encode_video, face_video_folder, use_eager_torch
from xception.cli import main
from xception.data.video import read_frames

pytestmark = pytest.mark.usefixtures("one_thread")


def test_explain_video_maps_equal_explain_on_the_crops(tmp_path, capsys):
    videos = face_video_folder(tmp_path / "videos", videos_per_class=1, frames=4)
    video = videos / "1_fake" / "fake0.mp4"
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    out = tmp_path / "maps"
    assert main(["explain", str(video), "--weights", str(weights), "--crop", "faces", "--frames", "4",
                 "--class", "1_fake", "--out", str(out), "--device", "cpu"]) == 0
    assert "fake0.mp4: 1_fake, " in capsys.readouterr().out
    stem = out / "fake0.mp4.1_fake.gradcam"
    frames = json.loads(stem.with_name(stem.name + ".json").read_text())
    maps = np.load(stem.with_name(stem.name + ".npy"))
    sheet = Image.open(stem.with_name(stem.name + ".png"))
    assert len(frames) == len(maps) >= 3 and maps.shape[1:] == (32, 32)
    assert sheet.size == (len(maps) * 224, 224)  # 32 px maps drawn at 224 px, one row
    decoded = {f.index: f.image for f in read_frames(video, [f["frame"] for f in frames])}
    crops = []
    for entry in frames:
        x, y, size = entry["box"]
        crops.append(tmp_path / f"crop{entry['frame']}.png")
        Image.fromarray(decoded[entry["frame"]][y:y + size, x:x + size]).save(crops[-1])
    single = tmp_path / "single"
    assert main(["explain", *map(str, crops), "--weights", str(weights), "--class", "1_fake", "--out", str(single),
                 "--device", "cpu"]) == 0
    for crop, video_map in zip(crops, maps, strict=True):
        assert np.load(single / f"{crop.stem}.1_fake.gradcam.npy") == pytest.approx(video_map, abs=1e-5)


def test_explain_video_explains_the_class_predict_decides(tmp_path, capsys, monkeypatch):
    use_eager_torch(monkeypatch)
    videos = face_video_folder(tmp_path / "videos", videos_per_class=1, frames=3)
    weights = detector_weights(tmp_path / "w.safetensors", class_names=FOLDER_CLASSES)
    for video in sorted(videos.rglob("*.mp4")):
        common = [str(video), "--weights", str(weights), "--crop", "faces", "--frames", "3", "--device", "cpu"]
        assert main(["predict", *common, "--runtime", "torch", "--out", str(tmp_path / "p")]) == 0
        decided = json.loads((tmp_path / "p" / f"{video.name}.verdict.json").read_text())["class"]
        capsys.readouterr()
        assert main(["explain", *common, "--out", str(tmp_path / "m")]) == 0
        assert f"{video.name}: {decided}, " in capsys.readouterr().out


def test_explain_video_without_a_face_says_so(tmp_path, capsys):
    blank = encode_video(tmp_path / "empty.mp4", [np.full((120, 160, 3), 128, np.uint8)] * 3)
    weights = detector_weights(tmp_path / "w.safetensors")
    assert main(["explain", str(blank), "--weights", str(weights), "--crop", "faces", "--out", str(tmp_path / "m"),
                 "--device", "cpu"]) == 1
    assert "empty.mp4: no face was found in the frames read, so there is nothing to explain" in capsys.readouterr().err
