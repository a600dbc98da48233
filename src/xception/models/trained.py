"""The weight-file contract, in one place: `open_weights` and `save_trained`.

- `open_weights(source)` -> `OpenedWeights(model, spec, description)`: the model in eval mode, what
  it is (`ModelSpec`: name, complete config, classes, channels) and what it is for
  (`WeightsDescription`). `source` is any of:
    - a file this project wrote (training, `xception convert`): its metadata records the spec, the
      classes and the preparation; the model is built from the recorded spec as it was, not from
      today's registry default;
    - published weights by name ("imagenet") or a `WeightsEntry`: fetched into the cache;
    - a Hugging Face Hub id, `hf-hub:ORG/NAME[@REVISION]` (`xception.models.weights.hub`): its
      model.safetensors through huggingface_hub's cache, then opened as a file;
    - a foreign file (the official Keras .h5, a timm or torchvision state dict): the model is sized
      by the file's logistic layer, and the class names and preparation come from the registry entry
      whose head it has (`published_metadata`), else none.
- `read_description(path)`: the description of a file of ours without reading its tensors.
- `save_trained(path, model, description)`: the one writer (tensors, the model's spec, the
  description), through `save_weights`.

Every reader of weights goes through here: predict, eval, serve, explain (through the inference
session), export, quantize, convert and fine-tuning's start (`xception.train.finetune`; a training
checkpoint `.pt` is a training state, read by `xception.train.checkpoint`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from xception.description import WeightsDescription
from xception.models.factory import create_model
from xception.models.registry import get_entry, recorded_spec, spec_overrides
from xception.models.spec import ModelSpec, model_spec
from xception.models.weights.assign import assign_state
from xception.models.weights.download import weights_file
from xception.models.weights.hub import hub_weights_file, is_hub_id
from xception.models.weights.load import read_state
from xception.models.weights.native import check_metadata, model_metadata, read_metadata, save_weights
from xception.models.weights.registry import WeightsEntry, default_weights, find_weights

logger = logging.getLogger(__name__)
DEFAULT_MODEL = "xception"  # what a foreign file or a weights name is for when no model is named

Source = str | os.PathLike | WeightsEntry


class OpenedWeights(NamedTuple):
    """A weight source opened: the model (eval mode), its spec and its description."""

    model: nn.Module
    spec: ModelSpec
    description: WeightsDescription


def open_weights(source: Source, *, model_name: str | None = None, num_classes: int | None = None,
                 in_channels: int = 3) -> OpenedWeights:
    """Open `source` (see the module docstring). `model_name` picks the model of a weights name or a
    foreign file (default "xception"); for our own files it must agree with the file's, which names
    its model. `num_classes` None keeps the file's classes; 0 drops its head, another count gives a
    fresh head (`xception convert`). `in_channels` sizes the model for a foreign file."""
    if is_hub_id(source):
        source = hub_weights_file(source)
    metadata = _our_metadata(source)
    if metadata is None:
        return _open_foreign(source, model_name or DEFAULT_MODEL, num_classes=num_classes, in_channels=in_channels)
    name = metadata.get("model_name")
    if not name:
        raise ValueError(f"{source} does not name its model; it was not written by xception training")
    if model_name not in (None, name):
        raise ValueError(f"{source} holds {name!r}, not {model_name!r}; drop the model name or pick {name!r}")
    spec = recorded_spec(metadata)
    model = create_model(name, num_classes=spec.num_classes if num_classes is None else num_classes,
                         in_channels=spec.in_channels, **spec_overrides(spec))
    state, _ = read_state(source, model)
    check_metadata(model, metadata, origin=str(source))
    assign_state(model, state, origin=str(source))
    description = describe(metadata)
    if model.num_classes != description.num_classes:  # a head of another size: its names no longer apply
        description = describe({**metadata, "num_classes": model.num_classes, "class_names": None})
    return OpenedWeights(model.eval(), model_spec(model), description)


def read_description(path: str | os.PathLike) -> WeightsDescription:
    """The description of a file this project wrote, without reading its tensors."""
    return describe(read_metadata(path))


def save_trained(path: str | os.PathLike, model: nn.Module, description: WeightsDescription) -> Path:
    """Write `model` (built by `create_model`, so it knows its spec) with `description`; the path."""
    spec = model_spec(model)
    if spec is None:
        raise ValueError("the model was not built by create_model, so it has no registered name to record")
    if (spec.name, spec.num_classes, spec.in_channels) != (description.model_name, description.num_classes,
                                                           description.in_channels):
        raise ValueError(f"the description is for {description.model_name!r} with {description.num_classes} "
                         f"classes and {description.in_channels} channels; the model is {spec.name!r} with "
                         f"{spec.num_classes} and {spec.in_channels}")
    return save_weights(model, path, metadata=description.to_metadata())


def describe(metadata: dict[str, Any]) -> WeightsDescription:
    """A file's metadata as a description, completed from the model registry (the task and the
    default input size that older files do not record)."""
    entry = get_entry(metadata["model_name"])
    return WeightsDescription.from_metadata(metadata, task=entry.task, default_image_size=entry.input_size)


def published_metadata(source: Source, model: nn.Module) -> dict[str, Any] | None:
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


def _open_foreign(source: Source, model_name: str, *, num_classes: int | None, in_channels: int) -> OpenedWeights:
    """A published name or another format's file, read into a model sized by its logistic layer."""
    path = weights_file(model_name, source)
    probe = create_model(model_name, num_classes=0, in_channels=in_channels)
    state, _ = read_state(path, probe)
    if num_classes is None:
        head = state.get("classifier.weight")
        num_classes = int(head.value.shape[0]) if head is not None else 0
    model = create_model(model_name, num_classes=num_classes, in_channels=in_channels)
    assign_state(model, state, origin=str(path))
    spec = model_spec(model)
    description = describe({**model_metadata(model), **(published_metadata(source, model) or {})})
    return OpenedWeights(model.eval(), spec, description)


def is_our_file(source: Source) -> bool:
    """Whether `source` is a file this project wrote (it records its model), not a name or a foreign file."""
    return _our_metadata(source) is not None


def _our_metadata(source: Source) -> dict[str, Any] | None:
    """The metadata of a file this project wrote, or None for anything else (names, foreign files)."""
    if isinstance(source, WeightsEntry) or not Path(source).is_file():
        return None
    try:
        return read_metadata(source)
    except ValueError:
        return None
