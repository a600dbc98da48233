"""A weight file's metadata as a `WeightsDescription`, completed from the model registry (the task and
the default input size that older files do not record)."""

from __future__ import annotations

import os
from typing import Any

from xception.description import WeightsDescription
from xception.models.registry import get_entry
from xception.models.weights.native import read_metadata


def describe(metadata: dict[str, Any]) -> WeightsDescription:
    """The description of what `save_weights` wrote (or `model_metadata` plus a registry entry's
    `file_metadata`)."""
    entry = get_entry(metadata["model_name"])
    return WeightsDescription.from_metadata(metadata, task=entry.task, default_image_size=entry.input_size)


def describe_file(path: str | os.PathLike) -> WeightsDescription:
    """The description of a file this project wrote, without loading its tensors."""
    return describe(read_metadata(path))
