"""A video's answer: the probabilities of each sampled frame (or of each face in it) and one for the
video, through the `InferenceSession` as any image (`prepare`, `probabilities`, `decide`): a video
is a sequence of images, never a second path from weights to answers.

The frames come from `xception.data.video_crops` (PyAV, then FaceForensics++'s face crop when
asked); each crop is prepared from its pixels exactly as `predict` prepares the same crop saved as a
PNG, so the per-frame probabilities are those `xception predict` gives on the crops `xception data
frames` writes. The video's probabilities aggregate the frames' (`xception.metrics.aggregate`), and
its verdict is decided by the weights' decision policy where they carry one (a threshold fitted on
frames applies to the aggregated probability as to a frame's), else by argmax.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from xception.data.video import Sampling, VideoError, VideoInfo
from xception.data.video_crops import FrameCrop, video_crops
from xception.description import VideoDecision
from xception.inference.ensemble import Ensemble
from xception.inference.session import InferenceSession
from xception.metrics.aggregate import aggregate_probabilities
from xception.tasks.decision import Decided, decision_text
from xception.tasks.tta import TTA
from xception.video_names import Aggregate, Crop, FaceChoice

BATCH_SIZE = 32  # crops scored together: one video's DeepfakeBench sample


@dataclass(frozen=True)
class ScoredFrame:
    """A `FrameCrop` without its pixels, and the probabilities of its crop (None: no face, not scored)."""

    index: int
    time: float
    face: int | None
    box: tuple[int, int, int] | None  # x, y, size of the square crop in the frame
    probabilities: tuple[float, ...] | None
    label: str | None  # the decided class of the crop (as `predict` decides an image), None: not scored


@dataclass(frozen=True)
class VideoAnswer:
    """A video's frames and verdict. `probabilities` (the aggregate of the scored frames), `label`
    (the decided class's name) and `reason` are None when no frame was scored (no face found)."""

    path: str
    info: VideoInfo
    frames: tuple[ScoredFrame, ...]
    aggregate: Aggregate
    probabilities: tuple[float, ...] | None
    label: str | None
    reason: str

    @property
    def scored(self) -> int:
        return sum(frame.probabilities is not None for frame in self.frames)


def answer_video(session: InferenceSession | Ensemble, path: str | os.PathLike, *, sampling: Sampling, crop: Crop,
                 face: FaceChoice, aggregate: Aggregate, tta: TTA = "none", workers: int = 1) -> VideoAnswer:
    """Score the frames `sampling` picks of the video at `path` (whole, or their faces, detected on
    `workers` threads) with one model's session or an ensemble (each member preparing the crops as its
    weights were evaluated) and decide the video; raises `VideoError` for a file that is not a video or
    has no frame."""
    if session.task != "classification":
        raise VideoError("videos are scored by classifiers; these weights are for segmentation")
    if aggregate == "confident" and (session.multilabel or len(session.class_names) != 2):
        raise VideoError("--aggregate confident scores two classes (real, fake); these weights have "
                         f"{len(session.class_names)}{' (multi-label)' if session.multilabel else ''}")
    info, crops = video_crops(path, sampling, crop=crop, face=face, workers=workers)
    frames = list(_score(session, crops, tta=tta))
    scored = [frame.probabilities for frame in frames if frame.probabilities is not None]
    if not scored:
        what = "no face was found in any of" if crop == "faces" else "none of"
        return VideoAnswer(os.fspath(path), info, tuple(frames), aggregate, None, None,
                           f"no verdict: {what} the {len(frames)} frames read")
    probabilities = aggregate_probabilities(torch.tensor(scored, dtype=torch.float64), aggregate)
    label, reason = _video_decided(session, probabilities, aggregate)
    return VideoAnswer(os.fspath(path), info, tuple(frames), aggregate, tuple(probabilities.tolist()), label,
                       f"{reason}; {aggregate} of {len(scored)} {'faces' if crop == 'faces' else 'frames'}")


def _score(session: InferenceSession | Ensemble, crops: Iterator[FrameCrop], *, tta: TTA) -> Iterator[ScoredFrame]:
    """The crops' `ScoredFrame`s in order, scored `BATCH_SIZE` at a time. Each crop is prepared as it
    arrives and its pixels dropped, so a batch holds model inputs, not frames (a 4K frame is 25 MB)."""
    from PIL import Image

    pending: list[tuple[FrameCrop, torch.Tensor | None]] = []

    def flush() -> Iterator[ScoredFrame]:
        inputs = [prepared for _, prepared in pending if prepared is not None]
        if inputs:
            probabilities = session.probabilities(torch.stack(inputs).to(session.device), tta=tta).double()
            rows = iter(zip(probabilities.tolist(), _decided(session, probabilities), strict=True))
        for crop, prepared in pending:
            box = (crop.box.x, crop.box.y, crop.box.size) if crop.box is not None else None
            row, (label, _) = next(rows) if prepared is not None else (None, (None, None))
            yield ScoredFrame(crop.index, crop.time, crop.face, box, None if row is None else tuple(row), label)
        pending.clear()

    for crop in crops:
        prepared = session.prepare(Image.fromarray(crop.image)) if crop.has_input else None
        pending.append((dataclasses.replace(crop, image=None), prepared))
        if sum(p is not None for _, p in pending) == BATCH_SIZE:
            yield from flush()
    yield from flush()


def video_policy(session: InferenceSession | Ensemble) -> VideoDecision | None:
    """The weights' video threshold (`xception calibrate --videos`); an ensemble has none."""
    return session.description.video_decision if isinstance(session, InferenceSession) else None


def _video_decided(session: InferenceSession | Ensemble, probabilities: torch.Tensor,
                   aggregate: Aggregate) -> tuple[str, str]:
    """(class name, why) of a video's aggregated `probabilities`: at the weights' video threshold where
    it was fitted for this `aggregate` (`xception calibrate --videos`; an ensemble has none), else as a
    frame's."""
    policy = video_policy(session)
    if policy is not None and policy.aggregate == aggregate:
        names, score = session.class_names, float(probabilities[1])
        positive = score >= policy.threshold
        name = names[1 if positive else 0]
        return name, (f"{name}, probability {float(probabilities[1 if positive else 0]):.2f} "
                      f"(p({names[1]}) {score:.3f} {'>=' if positive else '<'} {policy.reason()})")
    ((label, reason),) = _decided(session, probabilities[None])
    if policy is not None:
        reason += f"; the weights' video threshold is for --aggregate {policy.aggregate}, not {aggregate}"
    return label, reason


def _decided(session: InferenceSession | Ensemble, probabilities: torch.Tensor) -> list[tuple[str, str]]:
    """(class name, why) of each row of (N, C) probabilities: the weights' decision policy, else argmax
    (multi-label: the classes at or above 0.5, joined by "+")."""
    names = session.class_names
    decided: list[Decided] | None = session.decide(probabilities)
    if decided is not None:
        return [("+".join(names[i] for i in one.classes) or "none", decision_text(one, list(names)))
                for one in decided]
    if session.multilabel:
        return [("+".join(n for n, p in zip(names, row, strict=True) if p >= 0.5) or "none", "at 0.5")
                for row in probabilities.tolist()]
    return [(names[int(row.argmax())], f"{names[int(row.argmax())]}, probability {float(row.max()):.2f} (argmax)")
            for row in probabilities]


def write_answer(answer: VideoAnswer, out: str | os.PathLike, *, class_names: tuple[str, ...]) -> tuple[Path, Path]:
    """Write `out`/<video>.frames.csv (frame, time, face, box_x, box_y, box_size, class, p(<class>)
    for each class; a frame without a face has empty box, class and probabilities, and class
    "no face") and `out`/<video>.verdict.json (the video, its stream, the sampling, the
    aggregate, its probabilities, the decided class and why). Returns the two paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(answer.path).name
    table, verdict = out / f"{stem}.frames.csv", out / f"{stem}.verdict.json"
    with open(table, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["frame", "time", "face", "box_x", "box_y", "box_size", "class",
                         *(f"p({name})" for name in class_names)])
        for frame in answer.frames:
            box = frame.box or ("", "", "")
            if frame.probabilities is None:
                writer.writerow([frame.index, f"{frame.time:.6f}", "", *box, "no face", *[""] * len(class_names)])
                continue
            writer.writerow([frame.index, f"{frame.time:.6f}", "" if frame.face is None else frame.face, *box,
                             frame.label, *(f"{p:.9g}" for p in frame.probabilities)])
    info = answer.info
    verdict.write_text(json.dumps({
        "video": answer.path, "frame_count": info.frame_count, "frame_rate": info.frame_rate,
        "width": info.width, "height": info.height, "codec": info.codec,
        "frames_read": len({frame.index for frame in answer.frames}), "scored": answer.scored,
        "aggregate": answer.aggregate, "class": answer.label, "reason": answer.reason,
        "probabilities": None if answer.probabilities is None else dict(zip(class_names, answer.probabilities,
                                                                                strict=True)),
    }, indent=1) + "\n")
    return table, verdict
