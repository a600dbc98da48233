"""What the model sees of a video: the sampled frames (`xception.data.video`) whole, or the faces in
them cropped as FaceForensics++ crops them (`xception.data.faces`), one record per crop, and one
per frame without a face (recorded, never scored as if it held one)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from xception.data.faces import Detection, FaceBox, detect_faces_parallel, detection_pool, face_boxes
from xception.data.video import Sampling, VideoInfo, sample_frames
from xception.video_names import Crop, FaceChoice

DETECTION_CHUNK = 4  # frames per detection thread held in memory at a time


@dataclass(frozen=True)
class FrameCrop:
    """One input of a video's frame: `index` and `time` (seconds) of the frame, `face` (0 for the
    largest face of the frame, 1 the next...; None without --crop faces), its `detection` and
    `box`, and `image` (S, S, 3) uint8 RGB, the crop (the whole frame without --crop faces). A frame
    without a face has `image`, `box` and `face` None."""

    index: int
    time: float
    face: int | None
    detection: Detection | None
    box: FaceBox | None
    image: np.ndarray | None

    @property
    def has_input(self) -> bool:
        return self.image is not None


def video_crops(path: str | os.PathLike, sampling: Sampling, *, crop: Crop, face: FaceChoice,
                workers: int = 1) -> tuple[VideoInfo, Iterator[FrameCrop]]:
    """The video's `VideoInfo` and its crops, frame by frame in index order (see `FrameCrop`).
    `workers` > 1: faces are detected on that many threads, `DETECTION_CHUNK` frames per thread
    held at a time."""
    if crop not in ("none", "faces"):
        raise ValueError(f"crop must be 'none' or 'faces', got {crop!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    info, frames = sample_frames(path, sampling)

    def whole() -> Iterator[FrameCrop]:
        for frame in frames:
            yield FrameCrop(frame.index, frame.time, None, None, None, frame.image)

    def faces(pool) -> Iterator[FrameCrop]:
        while chunk := list(itertools.islice(frames, DETECTION_CHUNK * workers)):
            found = detect_faces_parallel([f.image for f in chunk], workers=workers, pool=pool)
            for frame, detections in zip(chunk, found, strict=True):
                boxes = face_boxes(frame.image, face=face, detections=detections)
                if not boxes:
                    yield FrameCrop(frame.index, frame.time, None, None, None, None)
                for number, (detection, box) in enumerate(boxes):
                    yield FrameCrop(frame.index, frame.time, number, detection, box, box.crop(frame.image))

    def crops() -> Iterator[FrameCrop]:
        if crop == "none":
            yield from whole()
        elif workers == 1:
            yield from faces(None)
        else:
            with detection_pool(workers) as pool:
                yield from faces(pool)

    return info, crops()
