"""`convert_weights`: any supported weight file -> this project's safetensors format."""

from __future__ import annotations

import os
from typing import Any

from xception.models.factory import create_model
from xception.models.weights.assign import assign_state
from xception.models.weights.load import read_state
from xception.models.weights.native import check_metadata, read_metadata, save_weights


def convert_weights(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    model_name: str,
    num_classes: int | None = None,
    in_channels: int = 3,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read `source` into a fresh `model_name`, check it fits, write it to `destination`.

    `num_classes` None takes it from the file: the rows of its logistic layer, or 0 (no head)
    for a body-only ("notop") file. Returns what `save_weights` wrote as metadata.
    """
    probe = create_model(model_name, num_classes=0, in_channels=in_channels)
    state, file_metadata = read_state(source, probe)
    if num_classes is None:
        head = state.get("classifier.weight")
        num_classes = int(head.value.shape[0]) if head is not None else 0
    model = create_model(model_name, num_classes=num_classes, in_channels=in_channels)
    if file_metadata is not None:
        check_metadata(model, file_metadata, origin=str(source))
        carried = {k: v for k, v in file_metadata.items() if k == "class_names" and len(v) == num_classes}
        metadata = {**carried, **(metadata or {})}
    assign_state(model, state, origin=str(source))
    model.eval()
    path = save_weights(model, destination, metadata=metadata)
    return read_metadata(path)
