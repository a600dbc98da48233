"""Any supported weight file (or published weights by name) -> a model, and -> this project's format.

`build_from_file` is what `xception convert`, and `predict`/`eval`/`export` on a foreign file, share:
it reads the file into a fresh model sized by the file's own logistic layer. A file of another format
records no class names and no preparation; when its head has the shape of the model's published
ImageNet weights (1000 classes, or none for a notop file), they are taken from that registry entry,
which `published_metadata` returns (None otherwise).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from torch import nn

from xception.description import WeightsDescription
from xception.models.describe import describe, describe_file
from xception.models.factory import create_model
from xception.models.weights.assign import assign_state
from xception.models.weights.download import weights_file
from xception.models.weights.load import read_state
from xception.models.weights.native import check_metadata, save_weights
from xception.models.weights.registry import WeightsEntry, default_weights, find_weights

logger = logging.getLogger(__name__)


def build_from_file(
    source: str | os.PathLike | WeightsEntry,
    *,
    model_name: str,
    num_classes: int | None = None,
    in_channels: int = 3,
) -> tuple[nn.Module, dict[str, Any] | None]:
    """(`model_name` in eval mode holding `source`'s tensors, the file's own metadata or None).

    `source` is a file or registered weights of `model_name` (fetched into the cache). `num_classes`
    None takes it from the file: the rows of its logistic layer, or 0 (no head) for a body-only file.
    """
    path = weights_file(model_name, source)
    probe = create_model(model_name, num_classes=0, in_channels=in_channels)
    state, file_metadata = read_state(path, probe)
    if num_classes is None:
        head = state.get("classifier.weight")
        num_classes = int(head.value.shape[0]) if head is not None else 0
    model = create_model(model_name, num_classes=num_classes, in_channels=in_channels)
    if file_metadata is not None:
        check_metadata(model, file_metadata, origin=str(path))
    assign_state(model, state, origin=str(path))
    return model.eval(), file_metadata


def published_metadata(source: str | os.PathLike | WeightsEntry, model: nn.Module) -> dict[str, Any] | None:
    """The class names, preparation and provenance of the published weights `source` names or, for a
    foreign file, of the registry entry whose head fits `model` (1000 classes or none); else None."""
    if isinstance(source, WeightsEntry):
        return source.file_metadata()
    named = find_weights(model.model_name, str(source))
    if named is not None:
        return named.file_metadata()
    if getattr(model, "in_channels", 3) != 3:
        return None
    entry = default_weights(model.model_name, model.num_classes)
    if entry is None:
        return None
    logger.info("%s records no class names or preparation; its head (%d classes) is that of the published "
                "%s, whose ImageNet classes and preparation are used", source, model.num_classes, entry.key)
    return entry.file_metadata()


def convert_weights(
    source: str | os.PathLike | WeightsEntry,
    destination: str | os.PathLike,
    *,
    model_name: str,
    num_classes: int | None = None,
    in_channels: int = 3,
    metadata: dict[str, Any] | None = None,
) -> WeightsDescription:
    """Read `source` into a fresh `model_name`, check it fits, write it to `destination`.

    Our own files keep their class names; other files get those of `published_metadata` (class
    names, preparation, provenance), which `metadata` overrides. Returns the description written.
    """
    model, file_metadata = build_from_file(source, model_name=model_name, num_classes=num_classes,
                                           in_channels=in_channels)
    if file_metadata is not None:
        carried = describe(file_metadata)
        if carried.num_classes != model.num_classes:  # a head of another size: its names no longer apply
            carried = dataclasses.replace(carried, class_names=None)
        written = carried.to_metadata()
    else:
        written = published_metadata(source, model) or {}
    path = save_weights(model, destination, metadata={**written, **(metadata or {})})
    return describe_file(path)
