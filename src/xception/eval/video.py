"""A two-class classifier evaluated on a folder of videos, `ROOT/<class>/<video>`, the class folders
named as the weights' classes (for example real/ and fake/): detection metrics per frame (every
scored crop, labelled with its video's class) and per video (each video's aggregated probability),
as DeepfakeBench and FaceForensics++ report them (`xception.metrics.binary`: ROC-AUC, EER, AP,
accuracy at 0.5), and the accuracy of the videos' verdicts under the weights' decision policy.

Each video is answered by `xception.inference.video.answer_video`, as `xception predict` answers it.
A file that is not a readable video is named in one warning and left out; a video without a face
(with --crop faces) gets no verdict, is named, and is left out of the per-video metrics.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from xception.data.video import Sampling, VideoError, is_video_path
from xception.inference.ensemble import Ensemble
from xception.inference.session import InferenceSession
from xception.inference.video import answer_video, video_policy
from xception.metrics.binary import binary_metrics
from xception.tasks.tta import TTA
from xception.video_names import Aggregate, Crop, FaceChoice

log = logging.getLogger(__name__)


def labelled_videos(root: str | os.PathLike, class_names: tuple[str, ...]) -> list[tuple[str, int]]:
    """(video path, class index) of every video under `root`/<class>/, sorted; ValueError for a class
    folder the weights do not know or a folder without videos."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder of videos: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name not in class_names]
    if not folders or unknown:
        raise ValueError(f"{root} must hold one folder per class of the weights ({', '.join(class_names)}) with the "
                         f"videos in them; found {', '.join(unknown) or 'no folder'}")
    videos = [(str(p), class_names.index(folder.name)) for folder in folders
              for p in sorted(folder.rglob("*")) if p.is_file() and is_video_path(p)]
    if not videos:
        raise ValueError(f"{root} holds no video file in its class folders")
    return videos


def evaluate_videos(session: InferenceSession | Ensemble, root: str | os.PathLike, *, sampling: Sampling, crop: Crop,
                    face: FaceChoice, aggregate: Aggregate, tta: TTA = "none", workers: int = 1,
                    progress: bool = True, keep_scores: bool = False) -> dict[str, Any]:
    """{"videos", "frames", "aggregate", "binary": {"frame", "group", "grouped_by"}, "verdict_accuracy",
    "no_verdict", "unreadable"} of the weights on the videos of `root` (see the module); faces
    detected on `workers` threads. Weights with a video threshold for this `aggregate` add
    "video_decision" (the policy in words; `verdict_accuracy` is at it). `keep_scores` adds "video_scores" and "video_targets" (each
    video with a verdict: its aggregated probability of class 1, its class)."""
    if session.multilabel or len(session.class_names) != 2:
        raise ValueError(f"video evaluation measures two-class detectors; these weights have "
                         f"{len(session.class_names)} classes{' (multi-label)' if session.multilabel else ''}")
    policy = video_policy(session)
    frame_scores, frame_targets, video_scores, video_targets = [], [], [], []
    correct, no_verdict, unreadable = 0, [], []
    videos = labelled_videos(root, session.class_names)
    for path, target in tqdm(videos, desc="videos", unit="video", file=sys.stderr,
                             disable=not (progress and sys.stderr.isatty())):
        try:
            answer = answer_video(session, path, sampling=sampling, crop=crop, face=face, aggregate=aggregate, tta=tta,
                                  workers=workers)
        except VideoError as error:
            log.warning("%s", error)
            unreadable.append(path)
            continue
        scored = [frame.probabilities[1] for frame in answer.frames if frame.probabilities is not None]
        frame_scores += scored
        frame_targets += [target] * len(scored)
        if answer.probabilities is None:
            log.warning("%s: %s", path, answer.reason)
            no_verdict.append(path)
            continue
        video_scores.append(answer.probabilities[1])
        video_targets.append(target)
        correct += answer.label == session.class_names[target]
    if not video_scores:
        raise ValueError(f"no video of {root} got a verdict")

    def metrics(scores: list[float], targets: list[int]) -> dict[str, float | int]:
        return binary_metrics(torch.tensor(scores, dtype=torch.float64), torch.tensor(targets))

    return {"videos": len(video_scores), "frames": len(frame_scores), "aggregate": aggregate,
            "binary": {"frame": metrics(frame_scores, frame_targets), "group": metrics(video_scores, video_targets),
                       "grouped_by": f"video, the {aggregate} of its frames"},
            "verdict_accuracy": correct / len(video_scores), "no_verdict": no_verdict, "unreadable": unreadable,
            **({"video_decision": policy.reason()} if policy is not None and policy.aggregate == aggregate else {}),
            **({"video_scores": video_scores, "video_targets": video_targets} if keep_scores else {})}
