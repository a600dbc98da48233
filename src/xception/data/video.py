"""Frames of a video file: decoded with PyAV (FFmpeg's libraries: any container and codec FFmpeg
reads), sampled as the deepfake-detection benchmarks do, with their index and presentation time.

Sampling (`Sampling`): `frames` evenly spaced over the video, `np.linspace(0, total - 1, frames)`
truncated to integers (DeepfakeBench's 32 per video; the DFDC winners' `VideoReader.read_frames`),
or every `every`-th frame from the first (FaceForensics++ scores every frame: `every=1`). Sampling
spans the first `max_read` frames at most, so that the decoding time of one video is bounded.

A frame's index is its position in presentation order (the decoder's output order), counted from 0;
its time is its presentation timestamp in seconds (exact for a variable frame rate, where index /
fps is not). Frames are decoded one at a time and only the sampled ones are converted to RGB, so the
memory held is one frame whatever the video's length or resolution. A rotated phone video (a display
matrix in its stream) comes out as it is shown: the rotation is applied.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from xception.errors import UserError
from xception.video_names import DEFAULT_FRAMES, DEFAULT_MAX_READ, VIDEO_SUFFIXES

log = logging.getLogger(__name__)


class VideoError(UserError, ValueError):
    """A file that is not a video FFmpeg can read, has no video stream, or no frame that decodes."""


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether `path`'s suffix is one of a video container's (`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video to read: `frames` evenly spaced, or every `every`-th (one of the two),
    among the first `max_read` frames."""

    frames: int | None = DEFAULT_FRAMES
    every: int | None = None
    max_read: int = DEFAULT_MAX_READ

    def __post_init__(self) -> None:
        if (self.frames is None) == (self.every is None):
            raise ValueError("sample a video by a number of evenly spaced frames or by a step, not both or neither")
        for name in ("frames", "every", "max_read"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def indices(self, total: int) -> list[int]:
        """The sorted, distinct frame indices to read of a video of `total` frames (all of them
        when it has no more than `frames`)."""
        total = min(total, self.max_read)
        if total < 1:
            return []
        if self.every is not None:
            return list(range(0, total, self.every))
        return sorted({int(i) for i in np.linspace(0, total - 1, min(self.frames, total))})

    def describe(self) -> str:
        chosen = f"{self.frames} evenly spaced frames" if self.every is None else f"every {self.every}. frame"
        return f"{chosen} of the first {self.max_read} at most"


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` (presentation order, from 0), `time` (seconds), `image` (H, W, 3)
    uint8 RGB as displayed (rotation applied)."""

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What a video's stream says of it: `frame_count` (the container's count, else counted by
    demuxing its packets), `frame_rate` (average, frames per second; None where unknown), the
    coded `width` x `height` and its `codec`."""

    path: str
    frame_count: int
    frame_rate: float | None
    width: int
    height: int
    codec: str


def import_av():
    """PyAV, or a `UserError` that says how to install it."""
    try:
        import av
    except ImportError:
        raise UserError("reading videos needs PyAV: pip install 'xception[video]'") from None
    return av


def _open(path: str | os.PathLike):
    av = import_av()

    if not Path(path).is_file():
        raise FileNotFoundError(f"no such video file: {path}")
    try:
        container = av.open(os.fspath(path))
    except av.error.FFmpegError as error:
        raise VideoError(f"{path} is not a video that FFmpeg can read ({_ffmpeg_reason(error)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    return container


def _ffmpeg_reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error).splitlines()[0]


def video_info(path: str | os.PathLike) -> VideoInfo:
    """The `VideoInfo` of `path`; `VideoError` for a file FFmpeg cannot open or without a video stream."""
    av = import_av()

    with _open(path) as container:
        stream = container.streams.video[0]
        count = stream.frames
        if count <= 0:  # Matroska, WebM, MPEG-TS...: no count in the container, so count the packets
            try:
                count = sum(1 for packet in container.demux(stream) if packet.size > 0)
            except av.error.FFmpegError as error:
                raise VideoError(f"{path}: cannot read its packets ({_ffmpeg_reason(error)})") from None
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(path=os.fspath(path), frame_count=int(count), frame_rate=float(rate) if rate else None,
                         width=stream.codec_context.width, height=stream.codec_context.height,
                         codec=stream.codec_context.name)


def read_frames(path: str | os.PathLike, indices: list[int]) -> Iterator[Frame]:
    """Decode `path` from its start and yield the frames at the sorted `indices`, one at a time.

    A video that stops decoding early (truncated, corrupt) yields the frames it has and logs one
    warning naming the file and the frames it lacks; `VideoError` when not one frame decodes."""
    av = import_av()

    wanted = iter(indices)
    next_index = next(wanted, None)
    decoded = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding is the bulk of reading
        rate = stream.average_rate or stream.guessed_rate
        try:
            for decoded, frame in enumerate(container.decode(stream), start=1):
                index = decoded - 1
                if index != next_index:
                    continue
                yield Frame(index=index, time=_frame_time(frame, index, rate), image=_displayed(frame))
                next_index = next(wanted, None)
                if next_index is None:
                    return
        except av.error.FFmpegError as error:
            if decoded == 0:
                raise VideoError(f"{path}: no frame decodes ({_ffmpeg_reason(error)})") from None
            log.warning("%s: decoding stopped after %d frames (%s)", path, decoded, _ffmpeg_reason(error))
    if decoded == 0:
        raise VideoError(f"{path} has no frames")
    if next_index is not None:
        missing = [next_index, *wanted]
        log.warning("%s: only %d frames decode (truncated?), so frames %s were not read", path, decoded,
                    _listed(missing))


def _frame_time(frame, index: int, rate: Fraction | None) -> float:
    if frame.time is not None:
        return float(frame.time)
    return float(index / rate) if rate else float("nan")


def _displayed(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB, turned as a player shows it: PyAV's `rotation` is the counter-clockwise
    angle of the stream's display matrix, and np.rot90 turns counter-clockwise."""
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _listed(indices: list[int]) -> str:
    return ", ".join(map(str, indices[:8])) + (f" and {len(indices) - 8} more" if len(indices) > 8 else "")


def sample_frames(path: str | os.PathLike, sampling: Sampling) -> tuple[VideoInfo, Iterator[Frame]]:
    """The video's `VideoInfo` and an iterator over the frames `sampling` picks; a video longer than
    `sampling.max_read` frames says so once."""
    info = video_info(path)
    if info.frame_count < 1:
        raise VideoError(f"{path} has no frames")
    if info.frame_count > sampling.max_read:
        log.warning("%s has %d frames: sampling reads the first %d (--max-read)", path, info.frame_count,
                    sampling.max_read)
    return info, read_frames(path, sampling.indices(info.frame_count))
