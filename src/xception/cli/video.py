"""The video options of `xception predict` (and `xception data frames`), and predict's video run:
parse, open the session, call `xception.inference.video`, print. Torch-free at import: `--help`
reads only `xception.video_names`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xception.video_names import (
    AGGREGATES,
    CROPS,
    DEFAULT_AGGREGATE,
    DEFAULT_CROP,
    DEFAULT_FACE,
    DEFAULT_FRAMES,
    DEFAULT_MAX_READ,
    FACE_CHOICES,
    VIDEO_SUFFIXES,
)


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """--frames / --every, --max-read, --crop and --face: which frames of a video, and what of them."""
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, metavar="N",
                          help=f"videos: N frames evenly spaced over the video (default {DEFAULT_FRAMES}, "
                          "DeepfakeBench's)")
    sampling.add_argument("--every", type=int, metavar="K", help="videos: every K-th frame from the first instead "
                          "(FaceForensics++ scores every frame: --every 1)")
    parser.add_argument("--max-read", type=int, default=DEFAULT_MAX_READ, metavar="M",
                        help="videos: decode at most the first M frames of each (default %(default)s)")
    parser.add_argument("--crop", choices=CROPS, default=DEFAULT_CROP,
                        help="videos: none scores the whole frame; faces crops each face found by dlib's frontal "
                        "face detector with FaceForensics++'s box (1.3x, square); a frame without a face is "
                        "recorded, not scored")
    parser.add_argument("--face", choices=FACE_CHOICES, default=DEFAULT_FACE,
                        help="with --crop faces: the largest face of each frame, or every face")


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """`predict`'s video options: the sampling's, --workers and --aggregate."""
    add_sampling_options(parser)
    parser.add_argument("--workers", type=int, default=1, help="videos with --crop faces: detect the faces on this "
                        "many threads (detection is the slowest stage: see docs/video.md)")
    parser.add_argument("--aggregate", choices=AGGREGATES, default=DEFAULT_AGGREGATE,
                        help="videos: how the frames' probabilities make the video's: mean (DeepfakeBench), median, "
                        "max, or confident (the DFDC winner's strategy, two classes); see docs/video.md")


def sampling_of(args: argparse.Namespace):
    from xception.data.video import Sampling

    if args.every is not None:
        return Sampling(frames=None, every=args.every, max_read=args.max_read)
    return Sampling(frames=args.frames if args.frames is not None else DEFAULT_FRAMES, max_read=args.max_read)


def is_video_run(paths: list[str]) -> bool:
    """Whether `predict`'s inputs are videos (or folders of them)."""
    return any(Path(p).is_dir() or Path(p).suffix.lower() in VIDEO_SUFFIXES for p in paths)


def expand_videos(paths: list[str]) -> list[str]:
    """Each path, a folder standing for its video files (sorted, in sub-folders too); an image among
    videos, or a folder without one, is an error."""
    videos = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path} holds no video file (any of {', '.join(VIDEO_SUFFIXES)})")
            videos += found
        elif not path.is_file():
            raise FileNotFoundError(f"no such video file: {path}")
        elif path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{path} is not a video file (by its name): give videos or images, not both")
        else:
            videos.append(str(path))
    return videos


def predict_videos(args: argparse.Namespace) -> int:
    """Score each video of `args.images` and print its verdict (and write its tables to --out).
    A file that fails is named in one line and the run goes on; the status is 1 when a video failed
    or got no verdict (no face), else 0."""
    from tqdm import tqdm

    from xception.data.video import VideoError
    from xception.errors import user_message
    from xception.inference.video import BATCH_SIZE, answer_video, write_answer

    if args.explain:
        raise ValueError("predict --explain takes images; for videos run `xception explain VIDEO` (a sheet of "
                         "the frames' maps)")
    videos = expand_videos(args.images)
    sampling = sampling_of(args)
    # A video's frames are scored in batches: the throughput at that batch decides the runtime.
    session = _open_scorer(args, batch_size=BATCH_SIZE)
    print(f"runtime: {session.runtime_text()}", file=sys.stderr)
    status = 0
    for video in tqdm(videos, desc="videos", unit="video", file=sys.stderr,
                      disable=len(videos) < 2 or not sys.stderr.isatty()):
        try:
            answer = answer_video(session, video, sampling=sampling, crop=args.crop, face=args.face,
                                  aggregate=args.aggregate, tta=args.tta, workers=args.workers)
        except (VideoError, FileNotFoundError) as error:
            print(f"xception predict: error: {user_message(error) or error}", file=sys.stderr)
            status = 1
            continue
        print(video)
        print(f"  verdict: {answer.reason}" if answer.label is not None else f"  {answer.reason}")
        if answer.probabilities is not None:
            ranked = sorted(zip(answer.probabilities, session.class_names, strict=True), reverse=True)
            for probability, name in ranked[:args.top_k]:
                print(f"  {probability:7.4f}  {name}")
        unscored = len(answer.frames) - answer.scored
        print(f"  frames: {len({f.index for f in answer.frames})} read, {answer.scored} scored"
              + (f", {unscored} without a face" if unscored else ""))
        if args.out:
            table, verdict = write_answer(answer, args.out, class_names=session.class_names)
            print(f"  wrote: {table}, {verdict}")
        status = status or (1 if answer.label is None else 0)
    return status


def add_video_eval_options(parser: argparse.ArgumentParser) -> None:
    """`eval`'s --videos DIR, with the sampling's options and --aggregate."""
    parser.add_argument("--videos", metavar="DIR", help="evaluate a two-class detector on the videos of DIR/<class>/ "
                        "(class folders named as the weights' classes): ROC-AUC, EER, AP per frame and per video "
                        "(docs/video.md); the options below say which frames, what of them, and how they make the "
                        "video's score")
    add_video_options(parser)


def evaluate_videos_of(args: argparse.Namespace) -> dict:
    """`xception eval --videos DIR`'s metrics (`xception.eval.video.evaluate_videos`)."""
    from xception.eval.video import evaluate_videos
    from xception.inference.video import BATCH_SIZE

    session = _open_scorer(args, batch_size=BATCH_SIZE)
    print(f"runtime: {session.runtime_text()}", file=sys.stderr)
    return evaluate_videos(session, args.videos, sampling=sampling_of(args), crop=args.crop, face=args.face,
                           aggregate=args.aggregate, tta=args.tta, workers=args.workers)


def _open_scorer(args: argparse.Namespace, *, batch_size: int):
    """The session of the one --weights of a video run, or the ensemble of several (or of an ensemble
    file): both prepare a frame into one tensor and score batches of them. A video's frames are scored
    in batches: the throughput at that batch decides the runtime."""
    from xception.inference.ensemble import Ensemble, is_ensemble_file
    from xception.inference.session import InferenceSession

    weights = [args.weights] if isinstance(args.weights, str) else args.weights
    options = dict(model_name=args.model, runtime=args.runtime, precision=args.precision, device=args.device,
                   workload="throughput", batch_size=batch_size)
    if len(weights) > 1 or is_ensemble_file(weights[0]):
        return Ensemble.open(weights, **options)
    return InferenceSession.open(weights[0], **options)


def _one_weights(weights: str | list[str]) -> str:
    """The one --weights of a video explanation (a map is one model's)."""
    if isinstance(weights, str):
        return weights
    if len(weights) != 1:
        raise ValueError("a video is explained for one --weights: a class activation map is one model's")
    return weights[0]


def add_frames_action(actions) -> None:
    """`xception data frames VIDEOS --out DIR`: training data from videos."""
    frames = actions.add_parser(
        "frames", help="write the frames (or faces) of VIDEOS/<class>/ videos as an image folder with a manifest",
        description="Sample the frames of every video of VIDEOS/<class>/ (the class from its folder, e.g. real/ and "
        "fake/), whole or their faces (--crop faces: dlib, FaceForensics++'s box), and write them as "
        "OUT/<class>/<video>_<frame>.png with OUT/frames.csv (path, video, class, frame, time, face, box), so that "
        "`xception train --data OUT --val-split F --group video` holds out whole videos and `xception eval "
        "--group-manifest OUT/frames.csv --group-column video` scores each video. Resumes where a killed run "
        "stopped (docs/video.md).")
    frames.add_argument("videos", metavar="VIDEOS")
    frames.add_argument("--out", required=True, metavar="DIR")
    frames.add_argument("--labels", metavar="CSV", help="the classes from this CSV (columns video,class; video: the "
                        "path in VIDEOS) instead of from the folders")
    add_sampling_options(frames)
    frames.add_argument("--workers", type=int, default=1, help="videos extracted at once, one process each "
                        "(decoding and face detection are the slow part)")
    frames.set_defaults(run=run_frames)


def run_frames(args: argparse.Namespace) -> int:
    from xception.data.video_frames import FrameJob, write_frames

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    summary = write_frames(args.videos, args.out, FrameJob(sampling_of(args), args.crop, args.face),
                           workers=args.workers, labels=args.labels)
    for key, reason in summary["unreadable"]:
        print(f"xception data frames: left out {key}: {reason}", file=sys.stderr)
    resumed = f" ({summary['done_before']} done before)" if summary["done_before"] else ""
    print(f"{summary['videos']} videos{resumed}: {summary['crops']} crops written, {summary['no_face']} frames "
          f"without a face; manifest {summary['manifest']}")
    return 1 if summary["unreadable"] else 0


def explain_videos(args: argparse.Namespace) -> int:
    """`xception explain VIDEO...`: one contact sheet of maps per video (`xception.explain.video`);
    a file that fails is named in one line and the run goes on (status 1)."""
    from xception.data.video import VideoError
    from xception.explain.video import explain_video
    from xception.inference.session import InferenceSession

    if args.classes and len(args.classes) > 1:
        raise ValueError("a video is explained for one --class (its sheet shows that class's map in every frame)")
    videos = expand_videos(args.images)
    session = InferenceSession.open(_one_weights(args.weights), model_name=args.model, device=args.device)
    status = 0
    for video in videos:
        try:
            print(explain_video(session, video, sampling=sampling_of(args), crop=args.crop, face=args.face,
                                method=args.method, layer=args.layer,
                                class_name=args.classes[0] if args.classes else None, out=args.out))
        except (VideoError, FileNotFoundError) as error:
            print(f"xception explain: error: {error}", file=sys.stderr)
            status = 1
    return status
