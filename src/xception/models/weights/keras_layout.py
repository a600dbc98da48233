"""Where each layer of Keras Applications' Xception lives in this project's Xception.

Keras names every layer of the main path (`block1_conv1`, `block{n}_sepconv{m}`, `..._bn`,
`predictions`) but not the four shortcut Conv2D/BatchNormalization layers, whose generated names
(`conv2d`, `conv2d_1`, ... or `conv2d_1` .. `conv2d_4`) depend on the Keras version. So the layers
are listed here in Keras' own order (`model.layers`): stem, then per module the separable
convolutions and their BatchNorm, then the shortcut convolution and its BatchNorm, then the
logistic layer. Readers match named layers by name and unnamed ones by their rank in this order.

Tensor layouts (Keras, channels last -> PyTorch):
conv kernel (kh, kw, in, out) -> (out, in, kh, kw); depthwise kernel (kh, kw, in, 1) ->
(in, 1, kh, kw); pointwise kernel (1, 1, in, out) -> (out, in, 1, 1); dense kernel (in, out) ->
(out, in); BatchNorm gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean,
running_var.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from xception.models.weights.assign import SourceTensor
from xception.models.xception import Xception

LayerKind = Literal["conv", "sepconv", "bn", "dense"]

# Keras weight name (the part after the last "/", without ":0") -> our parameter or buffer name.
_TORCH_NAMES: dict[LayerKind, dict[str, str]] = {
    "conv": {"kernel": "weight"},
    "sepconv": {"depthwise_kernel": "depthwise.weight", "pointwise_kernel": "pointwise.weight"},
    "bn": {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"},
    "dense": {"kernel": "weight", "bias": "bias"},
}
# The order in which Keras creates each layer's variables (Keras 3 files store them by index).
KERAS_WEIGHT_ORDER: dict[LayerKind, tuple[str, ...]] = {kind: tuple(names) for kind, names in _TORCH_NAMES.items()}
# Keras' class of each kind, as Keras 3 names it in `.weights.h5` files (snake case).
KERAS_CLASS: dict[LayerKind, str] = {
    "conv": "conv2d",
    "sepconv": "separable_conv2d",
    "bn": "batch_normalization",
    "dense": "dense",
}
# (Keras kind, weight) -> the permutation from Keras' layout to PyTorch's; vectors need none.
_PERMUTATIONS: dict[tuple[LayerKind, str], tuple[int, ...]] = {
    ("conv", "kernel"): (3, 2, 0, 1),  # (kh, kw, in, out) -> (out, in, kh, kw)
    ("sepconv", "depthwise_kernel"): (2, 3, 0, 1),  # (kh, kw, in, 1) -> (in, 1, kh, kw)
    ("sepconv", "pointwise_kernel"): (3, 2, 0, 1),  # (1, 1, in, out) -> (out, in, 1, 1)
    ("dense", "kernel"): (1, 0),  # (in, out) -> (out, in)
}


@dataclass(frozen=True)
class KerasLayer:
    """One Keras layer with weights: its name (None for the unnamed shortcut layers), kind, our module."""

    name: str | None
    kind: LayerKind
    module: str


def keras_layers(model: nn.Module) -> list[KerasLayer]:
    """The layers of `model` (an `Xception`) in Keras Applications' order, ending with `predictions`.

    `predictions` is listed even when the model has no logistic layer: whether a file's head may
    be dropped is `assign_state`'s decision. Keras' Xception has no fully-connected layers before
    `predictions`, so a model with `fc_layers` has nothing to match them with.
    Raises ValueError for a model that is not an Xception.
    """
    if not isinstance(model, Xception):
        raise ValueError(
            f"Keras Xception weights load into Xception models only, not {type(model).__name__}; "
            "pick an xception* model (see `xception models`)"
        )
    layers = [
        KerasLayer("block1_conv1", "conv", "stem.conv1"),
        KerasLayer("block1_conv1_bn", "bn", "stem.bn1"),
        KerasLayer("block1_conv2", "conv", "stem.conv2"),
        KerasLayer("block1_conv2_bn", "bn", "stem.bn2"),
    ]
    for flow_name in ("entry_flow", "middle_flow", "exit_flow"):
        for block_name, block in getattr(model, flow_name).named_children():
            path = f"{flow_name}.{block_name}"
            for unit_name in block.main._modules:
                if unit_name.startswith("sepconv"):
                    m = unit_name.removeprefix("sepconv")
                    layers.append(KerasLayer(f"{block_name}_sepconv{m}", "sepconv", f"{path}.main.{unit_name}"))
                    layers.append(KerasLayer(f"{block_name}_sepconv{m}_bn", "bn", f"{path}.main.bn{m}"))
            if block.shortcut is not None:
                layers.append(KerasLayer(None, "conv", f"{path}.shortcut.conv"))
                layers.append(KerasLayer(None, "bn", f"{path}.shortcut.bn"))
    layers.append(KerasLayer("predictions", "dense", "classifier"))
    return layers


def to_torch(layer: KerasLayer, weight_name: str, value: np.ndarray, *, source: str) -> tuple[str, SourceTensor]:
    """One Keras weight -> (our state-dict key, tensor in PyTorch's layout).

    `weight_name` is Keras' short name (`kernel`, `depthwise_kernel`, `gamma`, ...).
    """
    names = _TORCH_NAMES[layer.kind]
    if weight_name not in names:
        raise ValueError(
            f"{source!r}: a Keras {KERAS_CLASS[layer.kind]} layer has no weight {weight_name!r} "
            f"(expected {', '.join(names)}); the file holds another architecture"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(value))
    permutation = _PERMUTATIONS.get((layer.kind, weight_name))
    if permutation is not None:
        if tensor.dim() != len(permutation):
            raise ValueError(
                f"{source!r} has shape {tuple(tensor.shape)}; a Keras {weight_name} has "
                f"{len(permutation)} dimensions. The file holds another architecture"
            )
        tensor = tensor.permute(*permutation).contiguous()
    return f"{layer.module}.{names[weight_name]}", SourceTensor(tensor, source, tuple(value.shape))
