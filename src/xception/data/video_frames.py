"""Training data from videos (`xception data frames`): the sampled frames of every video of
`VIDEOS/<class>/` (or of `VIDEOS`, the classes from a CSV list), whole or their faces cropped as FaceForensics++ crops them, written as
`OUT/<class>/<video>_<frame>.png` (`..._<frame>_<face>.png` with every face), an image folder that
`xception train` and `eval` read as any other, and a manifest `OUT/frames.csv` with one row per
crop: path (relative to OUT), video (`<class>/<video>`, the group of its frames), class, frame,
time, face and box; a frame without a face has a row with no path and no box.

The manifest is what keeps a video's frames together: `xception eval --group-manifest
OUT/frames.csv --group-column video` scores each video, and `xception train --val-split F --group
video` holds out whole videos (`xception.data.split.grouped_split`).

Resuming: each finished video appends one line (its rows) to `OUT/frames.journal.jsonl`, flushed
and fsync'ed; its PNGs are written atomically before. A run killed at any moment (kill -9 too) and
started again skips the videos the journal holds, drops a line cut by the kill, and redoes the
video it was in. The settings are recorded in `OUT/frames.json`; a resume with others is refused.
The manifest is written (atomically) from the journal when every video is done.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xception.atomic_write import write_atomic
from xception.data.video import Sampling, VideoError, is_video_path
from xception.data.video_crops import video_crops
from xception.errors import UserError
from xception.video_names import Crop, FaceChoice

log = logging.getLogger(__name__)

MANIFEST = "frames.csv"
JOURNAL = "frames.journal.jsonl"
SETTINGS = "frames.json"
COLUMNS = ("path", "video", "class", "frame", "time", "face", "box_x", "box_y", "box_size")


@dataclass(frozen=True)
class FrameJob:
    """What `write_frames` does: the sampling, the crop, which faces."""

    sampling: Sampling
    crop: Crop
    face: FaceChoice


def labelled_videos(root: str | os.PathLike, labels: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """(video file, class) of every video under `root` (sub-folders too), sorted. The class is the
    first folder below `root`, or, with `labels`, the `class` column of that CSV file's row whose
    `video` column is the video's path relative to `root` (every video listed, every row a video)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder of videos: {root}")
    found = [path for path in sorted(root.rglob("*")) if path.is_file() and is_video_path(path)]
    if labels is not None:
        listed = read_labels(labels)
        relative = {path.relative_to(root).as_posix(): path for path in found}
        unlisted = sorted(set(relative) - set(listed))
        missing = sorted(set(listed) - set(relative))
        if unlisted or missing:
            raise UserError(f"{labels} must list every video of {root} by its path in it: "
                            + (f"{len(unlisted)} not listed ({', '.join(unlisted[:3])})" if unlisted else "")
                            + ("; " if unlisted and missing else "")
                            + (f"{len(missing)} listed but not there ({', '.join(missing[:3])})" if missing else ""))
        return [(relative[name], listed[name]) for name in sorted(relative)]
    videos = [(path, path.relative_to(root).parts[0]) for path in found if len(path.relative_to(root).parts) > 1]
    if not videos:
        raise UserError(f"{root} holds no video in class folders: lay it out as {root}/<class>/<video>, "
                        "e.g. 0_real/ and 1_fake/, or give --labels CSV")
    return videos


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """{video path: class} of a CSV file with the header `video,class`."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or not {"video", "class"} <= set(reader.fieldnames):
            raise UserError(f"{path}: a labels file is a CSV with the columns video,class; its header is "
                            f"{reader.fieldnames}")
        rows = list(reader)
    labels = {}
    for number, row in enumerate(rows, start=2):
        if not row["video"] or not row["class"] or "/" in row["class"]:
            raise UserError(f"{path}:{number}: a video path and a class name (without '/') are needed, got {row}")
        labels[Path(row["video"]).as_posix()] = row["class"]
    return labels


def video_key(path: Path, root: Path, label: str) -> str:
    """`<class>/<name>`: the video's group, its path in `root` without the suffix (and without its
    class folder), sub-folders joined by '__' (two videos of a class with one name stay apart)."""
    inside = path.relative_to(root).with_suffix("").parts
    if len(inside) > 1 and inside[0] == label:
        inside = inside[1:]
    return f"{label}/{'__'.join(inside)}"


def extract_video(path: Path, key: str, out: Path, job: FrameJob) -> list[dict[str, Any]]:
    """Write the crops of one video as PNGs under `out` and return its manifest rows."""
    from PIL import Image

    label, name = key.split("/", 1)
    rows = []
    _, crops = video_crops(path, job.sampling, crop=job.crop, face=job.face)
    for crop in crops:
        row = {"path": "", "video": key, "class": label, "frame": crop.index, "time": round(crop.time, 6),
               "face": "" if crop.face is None else crop.face, "box_x": "", "box_y": "", "box_size": ""}
        if crop.image is not None:
            suffix = f"_{crop.face}" if job.face == "all" and crop.face is not None else ""
            relative = f"{label}/{name}_{crop.index:06d}{suffix}.png"
            buffer = io.BytesIO()
            Image.fromarray(crop.image).save(buffer, format="PNG")
            data = buffer.getvalue()
            write_atomic(out / relative, lambda file, data=data: file.write(data))
            row["path"] = relative
            if crop.box is not None:
                row.update(box_x=crop.box.x, box_y=crop.box.y, box_size=crop.box.size)
        rows.append(row)
    return rows


def _extract(arguments: tuple[Path, str, Path, FrameJob]) -> tuple[str, list[dict[str, Any]] | str]:
    """A worker's task: (key, rows), or (key, the error's message) for a video that cannot be read."""
    path, key, out, job = arguments
    try:
        return key, extract_video(path, key, out, job)
    except VideoError as error:
        return key, str(error)


def read_journal(out: Path) -> dict[str, list[dict[str, Any]]]:
    """{video key: rows} of the videos the journal holds as done; a last line cut by a kill is
    dropped (and cut from the file, so that the next append starts a line)."""
    journal = out / JOURNAL
    if not journal.is_file():
        return {}
    done, good = {}, 0
    data = journal.read_bytes()
    for line in data.splitlines(keepends=True):
        try:
            record = json.loads(line)
            if not line.endswith(b"\n"):
                raise ValueError("cut")
        except ValueError:
            log.warning("%s: a line cut by an interrupted run is dropped; its video is done again", journal)
            break
        done[record["video"]] = record["rows"]
        good += len(line)
    if good != len(data):
        with open(journal, "r+b") as file:
            file.truncate(good)
    return done


def _append(out: Path, key: str, rows: list[dict[str, Any]]) -> None:
    with open(out / JOURNAL, "ab") as file:
        file.write((json.dumps({"video": key, "rows": rows}) + "\n").encode())
        file.flush()
        os.fsync(file.fileno())


def _check_settings(out: Path, job: FrameJob, root: Path, labels: str | os.PathLike | None) -> None:
    settings = {"videos": str(root.resolve()), **asdict(job)}
    if labels is not None:
        settings["labels"] = str(Path(labels).resolve())
    path = out / SETTINGS
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != json.loads(json.dumps(settings)):
            raise UserError(f"{out} was written with other settings ({path}: {recorded}); use another --out, or "
                            "the same options to resume")
        return
    write_atomic(path, lambda file: file.write((json.dumps(settings, indent=1) + "\n").encode()))


def write_frames(root: str | os.PathLike, out: str | os.PathLike, job: FrameJob, *, workers: int = 1,
                 labels: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Extract every video of `root` into `out` (see the module), on `workers` processes, the classes
    from the folders or from `labels` (`labelled_videos`); resumes what an earlier run into `out` left. Returns {"videos", "done_before", "crops", "no_face",
    "unreadable": [(file, reason)], "manifest"}."""
    from tqdm import tqdm

    root, out = Path(root), Path(out)
    videos = labelled_videos(root, labels)
    keys = [video_key(path, root, label) for path, label in videos]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UserError(f"two videos of {root} make the same name {twice[0]!r} (one name, two suffixes?): rename one")
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, job, root, labels)
    done = read_journal(out)
    todo = [(path, key, out, job) for (path, _), key in zip(videos, keys, strict=True) if key not in done]
    unreadable = [(key, rows) for key, rows in done.items() if isinstance(rows, str)]
    bar = tqdm(total=len(videos), initial=len(videos) - len(todo), desc="videos", unit="video", file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))
    for key, rows in _run(todo, workers):
        _append(out, key, rows)  # a video the journal holds is never done again, readable or not
        done[key] = rows
        if isinstance(rows, str):
            log.warning("%s", rows)
            unreadable.append((key, rows))
        bar.update()
        bar.set_postfix(frames=sum(len(r) for r in done.values() if not isinstance(r, str)))
    bar.close()
    rows = [row for key in keys if not isinstance(done[key], str) for row in done[key]]
    manifest = write_atomic(out / MANIFEST, lambda file: file.write(_csv(rows).encode()))
    return {"videos": len(videos), "done_before": len(videos) - len(todo), "crops": sum(bool(r["path"]) for r in rows),
            "no_face": sum(not r["path"] for r in rows), "unreadable": unreadable, "manifest": str(manifest)}


def _run(todo: list, workers: int) -> Iterator[tuple[str, list[dict[str, Any]] | str]]:
    if workers <= 1 or len(todo) <= 1:
        yield from map(_extract, todo)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_extract, todo, chunksize=1)


def _csv(rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
