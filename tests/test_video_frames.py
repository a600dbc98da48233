"""Reading a video's frames (`xception.data.video`): the frames asked for, with their times, from
videos encoded here with PyAV; rotation applied; one clear error or warning for bad files."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from video_files import encode_video, frame_number, numbered_frames
from xception.data.video import Sampling, VideoError, read_frames, sample_frames, video_info


def test_sampling_evenly_spaced_is_linspace_truncated():
    # DeepfakeBench / DFDC: np.linspace(0, total - 1, n) as integers.
    assert Sampling(frames=4).indices(10) == [0, 3, 6, 9]
    assert Sampling(frames=32).indices(300) == np.linspace(0, 299, 32).astype(int).tolist()
    assert Sampling(frames=50).indices(7) == list(range(7))  # a short video: every frame, once
    assert Sampling(frames=None, every=3).indices(10) == [0, 3, 6, 9]
    assert Sampling(frames=3, max_read=5).indices(1000) == [0, 2, 4]


def test_sampling_refuses_both_or_neither():
    with pytest.raises(ValueError, match="not both"):
        Sampling(frames=3, every=2)
    with pytest.raises(ValueError, match=">= 1"):
        Sampling(frames=0)


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mkv", "ffv1"), (".webm", "libvpx")])
def test_read_frames_gives_the_frames_asked_for_with_their_times(tmp_path, suffix, codec):
    path = encode_video(tmp_path / f"clip{suffix}", numbered_frames(30), rate=10, codec=codec)
    info = video_info(path)
    assert info.frame_count == 30 and info.frame_rate == pytest.approx(10) and (info.width, info.height) == (64, 48)
    frames = list(read_frames(path, [0, 7, 13, 29]))
    assert [f.index for f in frames] == [0, 7, 13, 29]
    assert [frame_number(f.image) for f in frames] == [0, 7, 13, 29]  # the pixels of those very frames
    assert [f.time for f in frames] == pytest.approx([0.0, 0.7, 1.3, 2.9])


def test_variable_frame_rate_times_are_the_presentation_times(tmp_path):
    times = [0.0, 0.04, 0.08, 0.5, 0.54, 1.5, 1.54, 1.58]  # pauses: index / fps would be wrong
    path = encode_video(tmp_path / "vfr.mp4", numbered_frames(len(times)), times=times)
    frames = list(read_frames(path, list(range(len(times)))))
    assert [f.time for f in frames] == pytest.approx(times)
    assert [frame_number(f.image) for f in frames] == list(range(len(times)))


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_comes_out_as_displayed(tmp_path, rotation):
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:16, :16] = 255  # a white corner, top left, in a wide picture
    path = encode_video(tmp_path / "phone.mp4", [pixels] * 3, rotation=rotation)
    (frame,) = read_frames(path, [1])
    # PyAV's rotation is counter-clockwise, as PIL's Image.rotate.
    expected = np.asarray(Image.fromarray(pixels).rotate(rotation, expand=True))
    assert frame.image.shape == expected.shape
    assert np.abs(frame.image.astype(int) - expected).mean() < 8


def test_sample_frames_bounds_the_frames_read(tmp_path, caplog):
    path = encode_video(tmp_path / "long.mp4", numbered_frames(40), rate=10)
    with caplog.at_level(logging.WARNING):
        _, frames = sample_frames(path, Sampling(frames=3, max_read=20))
        assert [frame_number(f.image) for f in frames] == [0, 9, 19]
    assert "has 40 frames: sampling reads the first 20" in caplog.text


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 100)
    with pytest.raises(VideoError, match="notes.mp4 is not a video that FFmpeg can read"):
        video_info(fake)
    image = tmp_path / "still.png"
    Image.fromarray(numbered_frames(1)[0]).save(image)  # FFmpeg opens a PNG as a one-frame video: it is one
    assert video_info(image).frame_count == 1


def test_a_truncated_video_gives_the_frames_it_has_and_says_so(tmp_path, caplog):
    path = encode_video(tmp_path / "whole.mkv", numbered_frames(60), codec="ffv1")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        frames = list(read_frames(cut, [0, 10, 59]))
    assert [f.index for f in frames][:2] == [0, 10] and 59 not in [f.index for f in frames]
    assert "cut.mkv" in caplog.text and "59" in caplog.text


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_video_without_frames_is_refused(tmp_path, suffix):
    import av

    path = tmp_path / f"empty{suffix}"
    with av.open(str(path), "w") as container:  # the headers, and not one frame
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    with pytest.raises(VideoError, match=f"empty{suffix}"):
        sample_frames(path, Sampling(frames=4))


READ_PEAK = """
import resource, sys
from xception.data.video import Sampling, sample_frames
_, frames = sample_frames(sys.argv[1], Sampling(frames=int(sys.argv[2])))
assert sum(1 for _ in frames) == int(sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_does_not_grow_with_the_frames_read_of_a_4k_video(tmp_path):
    import subprocess
    import sys

    import av

    path = tmp_path / "4k.mp4"
    noise = np.random.default_rng(0).integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 3840, 2160, "yuv420p", 2_000_000
        for i in range(24):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(noise, 8 * i, axis=1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    peak = {n: int(subprocess.run([sys.executable, "-c", READ_PEAK, str(path), str(n)], check=True,
                                  capture_output=True, text=True).stdout) for n in (2, 24)}
    # 22 more 4K frames held would be 22 x 25 MB; read one at a time, the peak stays (ru_maxrss in KiB).
    assert peak[24] - peak[2] < 50 * 1024
