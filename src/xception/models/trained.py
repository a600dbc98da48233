"""A model trained by this project, rebuilt from its weight file alone: the file's metadata names the
registered model, its overrides, classes and input channels."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from torch import nn

from xception.models.factory import create_model
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
