"""This project's weight format: safetensors, with the model's identity as JSON metadata.

The file holds the full state dict (parameters and BatchNorm buffers) and, under the metadata key
"xception", a JSON object: format_version, model_name, config (the resolved config as
`dataclasses.asdict`), num_classes, in_channels, class_names when given, and any other metadata
the caller adds. Loading checks it against the model, so a file cannot silently load into a
different variant whose tensors happen to have the same shapes (e.g. `xception_mid_relu`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from xception.models.weights.sniff import sniff_format
from xception.models.weights.tensor_files import read_tensor_file

FORMAT_VERSION = 1
METADATA_KEY = "xception"
_RESERVED = ("format_version", "model_name", "config", "num_classes", "in_channels")
# Config fields that change training but not the function the weights compute.
_TRAINING_ONLY_FIELDS = ("bn_momentum",)


def model_metadata(model: nn.Module) -> dict[str, Any]:
    """The identity of `model`: name, resolved config, num_classes, in_channels, format version."""
    config = getattr(model, "config", None)
    return {
        "format_version": FORMAT_VERSION,
        "model_name": getattr(model, "model_name", None),
        "config": json.loads(json.dumps(dataclasses.asdict(config))) if dataclasses.is_dataclass(config) else None,
        "num_classes": getattr(model, "num_classes", None),
        "in_channels": getattr(model, "in_channels", None),
    }


def save_weights(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write `model`'s state dict and identity to `path` (safetensors). Returns the path.

    `metadata` adds JSON-serialisable entries (e.g. ``class_names``: a list of num_classes
    strings, a training run's id); it may not override the model's identity.
    """
    from safetensors.torch import save

    from xception.atomic_write import write_bytes_atomic

    extra = dict(metadata or {})
    clashes = sorted(set(extra) & set(_RESERVED))
    if clashes:
        raise ValueError(f"metadata may not set {clashes}: save_weights takes them from the model")
    class_names = extra.get("class_names")
    num_classes = getattr(model, "num_classes", None)
    if class_names is not None and (not isinstance(class_names, list | tuple) or len(class_names) != num_classes):
        raise ValueError(f"class_names must be a list of num_classes={num_classes} names; got {class_names!r:.80}")
    document = {**model_metadata(model), **extra}
    try:
        text = json.dumps(document)
    except TypeError as error:
        raise ValueError(f"metadata must be JSON-serialisable: {error}") from None
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    return write_bytes_atomic(path, save(tensors, metadata={METADATA_KEY: text}))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata `save_weights` wrote into `path`; ValueError for any other file."""
    fmt = sniff_format(path)
    if fmt != "safetensors":
        raise ValueError(f"{str(path)!r} is a {fmt} file; only files written by save_weights carry metadata")
    _, raw = read_tensor_file(path, fmt)
    metadata = parse_metadata(raw)
    if metadata is None:
        raise ValueError(f"{str(path)!r} has no xception metadata; it was not written by save_weights")
    return metadata


def parse_metadata(raw: dict[str, str]) -> dict[str, Any] | None:
    """Our metadata from a safetensors header's metadata, or None when it has none."""
    if METADATA_KEY not in raw:
        return None
    metadata = json.loads(raw[METADATA_KEY])
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"weight format version {version} is not {FORMAT_VERSION}; upgrade the xception package")
    return metadata


def check_metadata(model: nn.Module, metadata: dict[str, Any], *, origin: str) -> None:
    """Fail when the file's model differs from `model` in anything but training-only settings."""
    ours = model_metadata(model)
    theirs_config, our_config = metadata.get("config") or {}, ours["config"] or {}
    differing = sorted(
        field
        for field in set(theirs_config) | set(our_config)
        if field not in _TRAINING_ONLY_FIELDS and theirs_config.get(field) != our_config.get(field)
    )
    if differing:
        shown = ", ".join(f"{f}={theirs_config.get(f)!r}" for f in differing)
        raise ValueError(
            f"{origin} holds {metadata.get('model_name')!r} with {shown}; model "
            f"{ours['model_name']!r} has {', '.join(f'{f}={our_config.get(f)!r}' for f in differing)}. "
            f"Create it as create_model({metadata.get('model_name')!r}, ...) or pass those overrides"
        )
