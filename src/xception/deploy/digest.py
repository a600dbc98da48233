"""A content digest of a model's weights: the key of what is derived from them and cached on disk
(the ONNX export, the AOTInductor package), so that new weights never reuse an old file."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_digest(model: nn.Module, *extra: object) -> str:
    """The sha256 (hex) of every parameter's and buffer's name, dtype, shape and bytes, and of
    `extra` (the input size, the precision, versions: whatever else the derived file depends on)."""
    digest = hashlib.sha256()
    for part in extra:
        digest.update(repr(part).encode())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())  # bytes of any dtype, bf16 included
    return digest.hexdigest()


def architecture_digest(model: nn.Module) -> str:
    """The sha256 (hex) of every parameter's and buffer's name and shape, not their values: what
    decides a model's speed (its layers and widths), the same for every training of it."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
    return digest.hexdigest()
