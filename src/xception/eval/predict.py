"""Inference with a trained weight file: rebuild its model from the file's metadata, then the top-k
classes (names and probabilities) for images on disk."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import torch
from torch import nn

from xception.models import create_model
from xception.models.registry import get_entry
from xception.models.weights import load_weights, read_metadata


def load_trained_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in `path` (a file written by `save_weights`, as training does) in eval
    mode, and the file's metadata (model_name, num_classes, class_names, data, ...)."""
    metadata = read_metadata(path)
    name = metadata.get("model_name")
    if not name:
        raise ValueError(f"{path} does not name its model; it was not written by xception training")
    base = json.loads(json.dumps(dataclasses.asdict(get_entry(name).config)))
    saved = metadata.get("config") or {}
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()
                 if k in base and v != base[k] and not isinstance(v, dict) and not _is_spec_list(v)}
    model = create_model(name, num_classes=metadata["num_classes"], in_channels=metadata["in_channels"], **overrides)
    load_weights(model, path)
    return model.eval(), metadata


def _is_spec_list(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, class_names: list[str], top_k: int,
            multilabel: bool = False) -> list[list[tuple[str, float]]]:
    """For each of the (N, C, H, W) `images` in [-1, 1], the `top_k` (class name, probability)
    pairs, most probable first. Probabilities: softmax (single-label) or per-class sigmoid."""
    logits = model(images).float()
    probabilities = logits.sigmoid() if multilabel else logits.softmax(dim=1)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [[(class_names[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
            for row_p, row_i in zip(values, indices, strict=True)]


def preparation(metadata: dict[str, Any]):
    """The function PIL image -> model input (C, H, W) in [-1, 1] that the weights were evaluated
    with, from the data config in the metadata; it needs no data on disk. Fashion-MNIST and its
    mosaics: grayscale, resized to the source grid, then their evaluation pipeline; photo sources:
    the evaluation resize and centre crop."""
    from xception.data import DataConfig
    from xception.data.batch_transforms import PilToModelInput, TensorPipeline
    from xception.data.transforms import photo_transforms

    data = dict(metadata.get("data") or {})
    if not data:
        raise ValueError("the weight file records no data preparation; it was not written by xception training")
    config = DataConfig(**{**data, "path": data.get("path") or "unused", "augment": False})
    if config.source in ("fashion_mnist", "mosaic"):
        side = 28 * (config.mosaic_grid if config.source == "mosaic" else 1)
        pipeline = TensorPipeline(image_size=config.image_size, in_channels=config.in_channels, augment=False,
                                  padding=config.crop_padding, erase_probability=0.0)
        return PilToModelInput(source_size=(side, side), pipeline=pipeline)
    return photo_transforms(config).predict
