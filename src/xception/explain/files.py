"""Explanations of image files with trained weights (an `InferenceSession`: the PyTorch model, its
class names and preparation); the maps of a batch written as overlay PNGs and raw .npy maps
(`xception explain`, `xception predict --explain`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xception.errors import UnknownNameError
from xception.explain.methods import Explanation, Method, explain
from xception.explain.overlay import overlay
from xception.inference.session import InferenceSession

BATCH_SIZE = 16  # images explained together (the backward pass keeps every activation of the batch)


def class_indices(names: list[str], class_names: list[str]) -> list[int]:
    """The indices of the class `names`; an unknown name fails listing the valid ones (the closest
    ones first for long lists such as ImageNet's 1000)."""
    import difflib

    indices = []
    for name in names:
        if name not in class_names:
            if len(class_names) <= 50:
                valid = ", ".join(class_names)
            else:
                close = difflib.get_close_matches(name, class_names, n=5, cutoff=0.5)
                valid = (f"closest: {', '.join(close)}; " if close else "") + \
                    f"{len(class_names)} classes in all: {', '.join(class_names[:10])}, ..."
            raise UnknownNameError(f"unknown class {name!r} for these weights; valid: {valid}")
        indices.append(class_names.index(name))
    return indices


def explain_files(session: InferenceSession, paths: list[str], *, classes: list[str] | None, method: Method,
                  layer: str | None, out: str | os.PathLike | None) -> list[WrittenMap]:
    """Explain each image file in `paths` with the PyTorch model of `session` (on its device) for
    each class name in `classes` (None: its top prediction), writing the maps as `write_explanation`
    does; images go `BATCH_SIZE` at a time. The session's engine is never built."""
    from xception.explain.layers import resolve_layer

    resolve_layer(session.model, layer)  # a wrong name fails before any image is read
    class_names = list(session.class_names)
    asked = class_indices(classes, class_names) if classes else [None]
    model = session.model.to(session.device)
    written = []
    for start in range(0, len(paths), BATCH_SIZE):
        batch = paths[start:start + BATCH_SIZE]
        images = torch.stack([session.prepare(p) for p in batch])
        for c in asked:
            explanation = explain(model, images, None if c is None else [c] * len(batch), method=method, layer=layer)
            written += write_explanation(explanation, images, batch, class_names=class_names,
                                         multilabel=session.multilabel, out=out)
    return written


@dataclass(frozen=True)
class WrittenMap:
    """One map on disk: the image it explains, the class (name, probability), and the two files."""

    image: str
    class_name: str
    probability: float
    layer: str
    method: str
    overlay: Path
    raw: Path

    def __str__(self) -> str:
        return (f"{self.image}: {self.class_name} p={self.probability:.4f} ({self.method} at {self.layer}) -> "
                f"{self.overlay}, {self.raw.name}")


def write_explanation(explanation: Explanation, images: torch.Tensor, paths: list[str], *,
                      class_names: list[str], multilabel: bool, out: str | os.PathLike | None) -> list[WrittenMap]:
    """For each image of the batch (N, C, H, W, the model's input), write NAME.CLASS.METHOD.png (the
    overlay) and .npy (float32 (H, W) in [0, 1]) into `out` (None: beside the image)."""
    probabilities = _probabilities(explanation.logits, multilabel=multilabel)
    written = []
    for i, path in enumerate(paths):
        c = int(explanation.classes[i])
        folder = Path(out) if out is not None else Path(path).parent
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{Path(path).stem}.{_slug(class_names[c])}.{explanation.method}"
        overlay(images[i], explanation.maps[i]).save(stem.with_name(stem.name + ".png"))
        np.save(stem.with_name(stem.name + ".npy"), explanation.maps[i].numpy().astype(np.float32))
        written.append(WrittenMap(image=path, class_name=class_names[c], probability=float(probabilities[i, c]),
                                  layer=explanation.layer, method=explanation.method,
                                  overlay=stem.with_name(stem.name + ".png"), raw=stem.with_name(stem.name + ".npy")))
    return written


def _probabilities(logits: torch.Tensor, *, multilabel: bool) -> torch.Tensor:
    """(N, classes): softmax or sigmoid; for segmentation logits (N, classes, H, W), the share of
    pixels predicted as each class."""
    if logits.ndim == 4:
        predicted = logits.argmax(dim=1).flatten(1)
        return torch.stack([row.bincount(minlength=logits.shape[1]) for row in predicted]).float() / predicted.shape[1]
    return logits.sigmoid() if multilabel else logits.softmax(dim=1)


def _slug(name: str) -> str:
    """A class name as a file-name part: 'T-shirt/top' -> 'T-shirt_top'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "class"
