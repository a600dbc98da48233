"""A model and its `WeightsDescription`, rebuilt from a weight file alone.

- A file written by this project (training, `xception convert`): its metadata names the registered
  model, its overrides, classes, input channels, task and preparation.
- Published weights by name ("imagenet") or a foreign file (the official Keras .h5, a timm state
  dict): the model is sized by the file's logistic layer, and the class names and preparation come
  from the matching registry entry (`xception.models.convert.published_metadata`).

`load_trained_model` is the one reader of weight-file metadata: every consumer (predict, eval,
export, quantize, serve, explain, fine-tuning) gets the typed description from here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from xception.config_fields import from_plain
from xception.description import WeightsDescription
from xception.models.convert import build_from_file, published_metadata
from xception.models.describe import describe
from xception.models.factory import create_model
from xception.models.registry import get_entry
from xception.models.weights import load_weights, read_metadata
from xception.models.weights.native import model_metadata
from xception.models.weights.registry import WeightsEntry

logger = logging.getLogger(__name__)
DEFAULT_MODEL = "xception"  # what a foreign file or a weights name is for when no model is named


def load_trained_model(
    weights: str | os.PathLike | WeightsEntry, *, model_name: str | None = None
) -> tuple[nn.Module, WeightsDescription]:
    """The model in eval mode and its description (a foreign file whose head is not that of
    published weights has no class names and no preprocessing). `model_name` picks the model of a
    weights name or a foreign file (default "xception"); for our own files it must agree with the
    file's, which names its model."""
    metadata = _our_metadata(weights)
    if metadata is None:
        return _foreign_model(weights, model_name or DEFAULT_MODEL)
    name = metadata.get("model_name")
    if not name:
        raise ValueError(f"{weights} does not name its model; it was not written by xception training")
    if model_name not in (None, name):
        raise ValueError(f"{weights} holds {name!r}, not {model_name!r}; drop the model name or pick {name!r}")
    model = create_model(name, num_classes=metadata["num_classes"], in_channels=metadata["in_channels"],
                         **_recorded_overrides(name, metadata.get("config") or {}))
    load_weights(model, weights)
    return model.eval(), describe(metadata)


def _foreign_model(weights: str | os.PathLike | WeightsEntry, model_name: str) -> tuple[nn.Module, WeightsDescription]:
    model, _ = build_from_file(weights, model_name=model_name)
    return model, describe({**model_metadata(model), **(published_metadata(weights, model) or {})})


def _our_metadata(weights: str | os.PathLike | WeightsEntry) -> dict[str, Any] | None:
    """The metadata of a file this project wrote, or None for anything else (names, foreign files)."""
    if isinstance(weights, WeightsEntry) or not Path(weights).is_file():
        return None
    try:
        return read_metadata(weights)
    except ValueError:
        return None


def _recorded_overrides(name: str, saved: dict[str, Any]) -> dict[str, Any]:
    """The fields of the config a file recorded (`dataclasses.asdict` as JSON) that differ from the
    registered model's, rebuilt as the config's types (BlockSpec tuples, nested specs). A field the
    registry no longer has is left out (files of older versions)."""
    base = get_entry(name).config
    recorded = from_plain(type(base), saved)
    return {field.name: getattr(recorded, field.name) for field in dataclasses.fields(base)
            if field.name in saved and getattr(recorded, field.name) != getattr(base, field.name)}
