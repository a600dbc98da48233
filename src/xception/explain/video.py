"""A video's class activation maps (`xception explain VIDEO`): the map of every sampled frame (or face,
with --crop faces), as `xception explain` draws an image's, laid out as one contact sheet.

Every crop is prepared as `predict` prepares it and explained for one class: the one asked for, else
the video's class (as `predict --aggregate mean` decides it: the mean probability of its crops,
under the weights' decision policy),
so that the sheet shows where, frame by frame, the evidence for the video's verdict lies. Written
into --out: VIDEO.CLASS.METHOD.png (the sheet: the overlays in frame order, `COLUMNS` to a row),
VIDEO.CLASS.METHOD.npy (the raw maps, float32 (N, S, S) in [0, 1]) and VIDEO.CLASS.METHOD.json (for
each map, in order: the frame, its time, the face and its box, the class's probability).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xception.data.video import Sampling, VideoError
from xception.data.video_crops import video_crops
from xception.explain.files import BATCH_SIZE, _slug, class_indices
from xception.explain.methods import Method, explain
from xception.explain.overlay import overlay
from xception.inference.session import InferenceSession, probabilities
from xception.tasks.decision import calibrated_logits
from xception.video_names import Crop, FaceChoice

COLUMNS = 8  # overlays per row of the sheet


@dataclass(frozen=True)
class WrittenSheet:
    video: str
    class_name: str
    maps: int
    method: str
    layer: str
    sheet: Path
    raw: Path
    frames: Path

    def __str__(self) -> str:
        return (f"{self.video}: {self.class_name}, {self.maps} maps ({self.method} at {self.layer}) -> {self.sheet}, "
                f"{self.raw.name}, {self.frames.name}")


def explain_video(session: InferenceSession, path: str | os.PathLike, *, sampling: Sampling, crop: Crop,
                  face: FaceChoice, method: Method, layer: str | None, class_name: str | None,
                  out: str | os.PathLike) -> WrittenSheet:
    """Explain the crops of the video at `path` (see the module); `VideoError` when no frame has a
    face to explain. The session's engine is never built: the maps need the PyTorch model."""
    from PIL import Image

    from xception.explain.layers import resolve_layer

    if session.task != "classification":
        raise VideoError("videos are explained for classifiers; these weights are for segmentation")
    resolve_layer(session.model, layer)  # a wrong name fails before the video is read
    _, crops = video_crops(path, sampling, crop=crop, face=face)
    kept = [c for c in crops if c.has_input]
    if not kept:
        raise VideoError(f"{path}: no face was found in the frames read, so there is nothing to explain")
    images = torch.stack([session.prepare(Image.fromarray(c.image)) for c in kept]).to(session.device)
    model = session.model.to(session.device)
    names = list(session.class_names)
    with torch.no_grad():
        scores = probabilities(calibrated_logits(model(images).float(), session.description.decision),
                               multilabel=session.multilabel).cpu()
    chosen = class_indices([class_name], names)[0] if class_name else _video_class(session, scores)
    maps, used = [], None
    for start in range(0, len(kept), BATCH_SIZE):
        batch = images[start:start + BATCH_SIZE]
        explanation = explain(model, batch, [chosen] * len(batch), method=method, layer=layer)
        maps.append(explanation.maps)
        used = explanation
    maps = torch.cat(maps)
    overlays = [overlay(image.cpu(), heat) for image, heat in zip(images, maps, strict=True)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{Path(path).name}.{_slug(names[chosen])}.{method}"
    sheet, raw, frames = (stem.with_name(stem.name + suffix) for suffix in (".png", ".npy", ".json"))
    _contact_sheet(overlays).save(sheet)
    np.save(raw, maps.numpy().astype(np.float32))
    frames.write_text(json.dumps([
        {"frame": c.index, "time": c.time, "face": c.face,
         "box": None if c.box is None else [c.box.x, c.box.y, c.box.size],
         f"p({names[chosen]})": float(scores[i, chosen])} for i, c in enumerate(kept)], indent=1) + "\n")
    return WrittenSheet(video=os.fspath(path), class_name=names[chosen], maps=len(kept), method=used.method,
                        layer=used.layer, sheet=sheet, raw=raw, frames=frames)


def _video_class(session: InferenceSession, scores: torch.Tensor) -> int:
    """The class `predict --aggregate mean` decides for the video of these (N, C) crop probabilities."""
    mean = scores.double().mean(0, keepdim=True)
    decided = session.decide(mean)
    if decided is not None and decided[0].classes:
        return decided[0].classes[0]
    return int(mean.argmax())


def _contact_sheet(pictures: list) -> object:
    """The pictures (equal sizes) in reading order, `COLUMNS` to a row, on black."""
    from PIL import Image

    width, height = pictures[0].size
    columns = min(COLUMNS, len(pictures))
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for i, picture in enumerate(pictures):
        sheet.paste(picture, ((i % columns) * width, (i // columns) * height))
    return sheet
