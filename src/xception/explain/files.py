"""Explanations of image files with trained weights: the model and what it needs to know, loaded
once; the maps of a batch written as overlay PNGs and raw .npy maps (`xception explain`,
`xception predict --explain`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xception.errors import UnknownNameError
from xception.explain.methods import Explanation, Method, explain
from xception.explain.overlay import overlay

BATCH_SIZE = 16  # images explained together (the backward pass keeps every activation of the batch)


@dataclass(frozen=True)
class ExplainedModel:
    """A trained model in eval mode with what explaining needs: its class names, whether it is
    multi-label, its input channels and the preparation (PIL image -> (C, S, S) in [-1, 1])."""

    model: nn.Module
    class_names: list[str]
    multilabel: bool
    in_channels: int
    transform: Callable


def load_explained_model(weights: str | os.PathLike, *, model_name: str | None = None) -> ExplainedModel:
    """The model of `weights` (a file of this project's, or published weights by name)."""
    from xception.data.prediction import prediction_transform
    from xception.models.trained import load_trained_model

    model, description = load_trained_model(weights, model_name=model_name)
    if not description.class_names:
        raise ValueError(f"{weights} records no class names: a notop file (features, not classes) or a foreign "
                         "file whose head is not ImageNet's; fine-tune or convert it with this project")
    return ExplainedModel(model=model, class_names=list(description.class_names), multilabel=description.multilabel,
                          in_channels=description.in_channels,
                          transform=prediction_transform(description.preprocessing,
                                                         in_channels=description.in_channels))


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


def explain_files(explained: ExplainedModel, paths: list[str], *, classes: list[str] | None, method: Method,
                  layer: str | None, out: str | os.PathLike | None, device: torch.device) -> list[WrittenMap]:
    """Explain each image file in `paths` for each class name in `classes` (None: its top
    prediction), writing the maps as `write_explanation` does; images go `BATCH_SIZE` at a time."""
    from xception.data.images import load_image
    from xception.explain.layers import resolve_layer

    resolve_layer(explained.model, layer)  # a wrong name fails before any image is read
    asked = class_indices(classes, explained.class_names) if classes else [None]
    model = explained.model.to(device)
    written = []
    for start in range(0, len(paths), BATCH_SIZE):
        batch = paths[start:start + BATCH_SIZE]
        images = torch.stack([explained.transform(load_image(p, in_channels=explained.in_channels)) for p in batch])
        for c in asked:
            explanation = explain(model, images, None if c is None else [c] * len(batch), method=method, layer=layer)
            written += write_explanation(explanation, images, batch, class_names=explained.class_names,
                                         multilabel=explained.multilabel, out=out)
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
