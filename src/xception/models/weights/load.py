"""`load_weights`: any supported file into a model, by way of one checked assignment.

Formats, told apart by their bytes and keys, not their names:
Keras HDF5 (the official Keras 2 files and Keras 3 `.weights.h5`) -> `keras_h5`;
safetensors or torch.save state dicts with this project's keys (our own files) as they are;
timm `legacy_xception` / Cadene keys -> `timm_xception`;
timm aligned Xception keys (`xception41` ...) -> `timm_aligned`;
torchvision Inception V3 keys -> `xception.models.weights.torchvision_inception_v3`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from xception.models.weights.assign import SourceTensor, assign_state, is_head_key
from xception.models.weights.keras_h5 import read_keras_h5
from xception.models.weights.native import check_metadata, parse_metadata
from xception.models.weights.sniff import sniff_format
from xception.models.weights.tensor_files import read_tensor_file
from xception.models.weights.timm_aligned import from_timm_aligned, looks_like_timm_aligned
from xception.models.weights.timm_xception import from_timm_xception, looks_like_timm_xception
from xception.models.weights.torchvision_inception_v3 import convert_torchvision_inception_v3

_TORCHVISION_INCEPTION_KEY = "Conv2d_1a_3x3.conv.weight"


def read_state(path: str | os.PathLike, model: nn.Module) -> tuple[dict[str, SourceTensor], dict[str, Any] | None]:
    """(the file's tensors under `model`'s keys, our metadata or None). Checks nothing against shapes."""
    fmt = sniff_format(path)
    if fmt == "hdf5":
        return read_keras_h5(path, model), None
    tensors, raw_metadata = read_tensor_file(path, fmt)
    metadata = parse_metadata(raw_metadata)
    return _rename(tensors, model), metadata


def load_weights(model: nn.Module, path: str | os.PathLike, *, fresh_head: bool = False) -> nn.Module:
    """Load the weights in `path` into `model` in place and return it. `fresh_head` loads the body
    only and keeps the model's freshly initialised head (fine-tuning to other classes).

    ValueError, naming the first tensor, when the file does not fit the model (see
    `assign_state` for heads); FileNotFoundError for a missing path.
    """
    state, metadata = read_state(path, model)
    if fresh_head:
        state = {key: value for key, value in state.items() if not is_head_key(key)}
    if metadata is not None:
        check_metadata(model, metadata, origin=str(path))
    assign_state(model, state, origin=str(path))
    return model


def _rename(tensors: dict[str, torch.Tensor], model: nn.Module) -> dict[str, SourceTensor]:
    keys = list(tensors)
    if looks_like_timm_xception(keys):
        return from_timm_xception(tensors, model)
    if looks_like_timm_aligned(keys):
        return from_timm_aligned(tensors, model)
    # Our InceptionV3 keeps torchvision's module names; only torchvision's has `fc` and `AuxLogits`.
    if _TORCHVISION_INCEPTION_KEY in tensors and any(k.startswith(("fc.", "AuxLogits.")) for k in keys):
        converted = convert_torchvision_inception_v3(tensors)
        return {key: SourceTensor(value, f"torchvision:{key}") for key, value in converted.items()}
    return {key: SourceTensor(value, key) for key, value in tensors.items()}
