"""Read Keras' HDF5 weight files of Xception into this project's state-dict keys.

Two layouts:
- Keras 2 "legacy" HDF5, the official `xception_weights_tf_dim_ordering_tf_kernels[_notop].h5`:
  attribute `layer_names` on the root (or on `model_weights` in a whole-model file), one group per
  layer with attribute `weight_names` (`block1_conv1/kernel:0`, or without `:0` when Keras 3
  wrote it), the datasets under those names. Named layers match by name, the unnamed shortcut
  layers by their rank (see `keras_layout`).
- Keras 3 `.weights.h5`: `layers/<class>[_<i>]/vars/<j>`, where <class> is the layer's class in
  snake case and <i> counts the layers of that class in `model.layers` order: no layer names at all,
  so every layer matches by its rank.
"""

from __future__ import annotations

import os
from collections import Counter

import h5py
from torch import nn

from xception.models.weights.assign import SourceTensor
from xception.models.weights.keras_layout import (
    KERAS_CLASS,
    KERAS_WEIGHT_ORDER,
    KerasLayer,
    LayerKind,
    keras_layers,
    to_torch,
)


def read_keras_h5(path: str | os.PathLike, model: nn.Module) -> dict[str, SourceTensor]:
    """Any Keras HDF5 file of Xception -> {our key: tensor}; ValueError if it is neither layout."""
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{str(path)!r} could not be read as HDF5 ({error}); the file may be truncated") from None
    with file:
        root = file["model_weights"] if "model_weights" in file else file
        if _has_attribute_list(root, "layer_names"):
            return _read_legacy(root, model, origin=str(path))
        if "layers" in root:
            return _read_keras3(root, model, origin=str(path))
    raise ValueError(
        f"{str(path)!r} is an HDF5 file but not Keras weights (no 'layer_names' attribute and no "
        "'layers' group); pass a file written by Keras' save_weights"
    )


def _read_legacy(root: h5py.Group, model: nn.Module, *, origin: str) -> dict[str, SourceTensor]:
    layers = keras_layers(model)
    by_name = {layer.name: layer for layer in layers if layer.name}
    unnamed: dict[LayerKind, list[KerasLayer]] = {"conv": [], "bn": []}
    for layer in layers:
        if layer.name is None:
            unnamed[layer.kind].append(layer)
    state: dict[str, SourceTensor] = {}
    for layer_name in _attribute_list(root, "layer_names"):
        group = root[layer_name]
        weight_names = _attribute_list(group, "weight_names")
        if not weight_names:  # activations, pools, adds
            continue
        short_names = [name.rsplit("/", 1)[-1].removesuffix(":0") for name in weight_names]
        layer = by_name.get(layer_name)
        if layer is None:
            # An unnamed shortcut layer: Conv2D without bias has one kernel, BatchNorm has gamma.
            kind: LayerKind = "bn" if "gamma" in short_names else "conv"
            if (kind == "conv" and short_names != ["kernel"]) or not unnamed[kind]:
                raise ValueError(
                    f"{origin}: layer {layer_name!r} ({', '.join(weight_names)}) has no counterpart "
                    f"in model {getattr(model, 'model_name', type(model).__name__)!r}; the file "
                    "holds another architecture or variant"
                )
            layer = unnamed[kind].pop(0)
        for weight_name, short_name in zip(weight_names, short_names, strict=True):
            key, tensor = to_torch(layer, short_name, group[weight_name][()], source=weight_name)
            state[key] = tensor
    return state


def _read_keras3(root: h5py.Group, model: nn.Module, *, origin: str) -> dict[str, SourceTensor]:
    layers_group = root["layers"]
    # A model saved inside another (e.g. Sequential([xception])) nests its layers one level down.
    while len(layers_group) == 1 and "layers" in next(iter(layers_group.values())):
        layers_group = next(iter(layers_group.values()))["layers"]
    with_vars = {name for name, group in layers_group.items() if "vars" in group and len(group["vars"])}
    rank: Counter[str] = Counter()
    state: dict[str, SourceTensor] = {}
    for layer in keras_layers(model):
        keras_class = KERAS_CLASS[layer.kind]
        i = rank[keras_class]
        rank[keras_class] += 1
        group_name = keras_class if i == 0 else f"{keras_class}_{i}"
        if group_name not in with_vars:
            continue  # a missing tensor is assign_state's to report (or a head it may leave fresh)
        with_vars.discard(group_name)
        variables = layers_group[group_name]["vars"]
        names = KERAS_WEIGHT_ORDER[layer.kind]
        if len(variables) != len(names):
            raise ValueError(
                f"{origin}: layers/{group_name} holds {len(variables)} tensors; as {layer.name or layer.module} "
                f"it needs {len(names)} ({', '.join(names)}). The file holds another architecture"
            )
        for j, short_name in enumerate(names):
            source = f"layers/{group_name}/vars/{j}"
            key, tensor = to_torch(layer, short_name, variables[str(j)][()], source=source)
            state[key] = tensor
    if with_vars:
        first = sorted(with_vars, key=_natural_key)[0]
        raise ValueError(
            f"{origin}: layers/{first} has no counterpart in model "
            f"{getattr(model, 'model_name', type(model).__name__)!r}; the file holds another architecture"
        )
    return state


def _natural_key(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return (stem, int(number)) if number.isdigit() else (name, 0)


def _has_attribute_list(group: h5py.Group, name: str) -> bool:
    return name in group.attrs or f"{name}0" in group.attrs


def _attribute_list(group: h5py.Group, name: str) -> list[str]:
    """A list attribute, which Keras splits into `name0`, `name1`, ... when it exceeds 64 KB."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]
