"""The names and defaults of the video options (`xception.data.video`, `xception.data.faces`,
`xception.tasks.video`), for the command line: torch-free, so that `xception --help` stays quick.
Every default of the video path is defined here and nowhere else."""

from __future__ import annotations

from typing import Literal, get_args

# The containers a path is taken for a video by (any that FFmpeg reads opens; these decide which of
# `predict`'s inputs go the video way).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv",
                  ".wmv", ".3gp", ".ogv")

# mean: the average frame probability (DeepfakeBench's video-level score); median: robust to a few
# outlying frames; max: the most suspicious frame; confident: the DFDC winner's "confident strategy"
# (Seferbekov, selimsef/dfdc_deepfake_challenge, kernel_utils.confident_strategy), two classes only.
Aggregate = Literal["mean", "median", "max", "confident"]
AGGREGATES: tuple[Aggregate, ...] = get_args(Aggregate)

Crop = Literal["none", "faces"]  # none: the whole frame; faces: FaceForensics++'s crop of each detected face
CROPS: tuple[Crop, ...] = get_args(Crop)
FaceChoice = Literal["largest", "all"]  # largest: one face per frame (by its detected area); all: every face
FACE_CHOICES: tuple[FaceChoice, ...] = get_args(FaceChoice)

DEFAULT_FRAMES = 32  # DeepfakeBench's evenly spaced frames per video
# The bound on the frames decoded per video (10 minutes at 30 fps): sampling spans the first this
# many frames, and a longer video says so.
DEFAULT_MAX_READ = 18_000
DEFAULT_AGGREGATE: Aggregate = "mean"
DEFAULT_CROP: Crop = "none"
DEFAULT_FACE: FaceChoice = "largest"
FACE_SCALE = 1.3  # FaceForensics++'s box: 1.3x the detection (detect_from_video.get_boundingbox)
