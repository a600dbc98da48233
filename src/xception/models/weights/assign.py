"""Copy tensors read from any file into a model, or fail naming the first tensor that does not fit.

Every reader turns its file into a mapping from this project's state-dict keys to `SourceTensor`s
already in PyTorch's layout; `assign_state` is the one place that decides whether they fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Counters PyTorch keeps next to BatchNorm statistics; no other framework has them.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)
# The head: global pooling has no tensors, so the fully-connected layers and the logistic layer.
_HEAD_PREFIXES = ("fc_layers.", "classifier.")


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of a weight file, already in PyTorch's layout, with its name (and shape) in that file."""

    value: torch.Tensor
    source: str
    source_shape: tuple[int, ...] | None = None  # when the file's layout differs from PyTorch's

    def describe(self) -> str:
        shape = tuple(self.value.shape)
        if self.source_shape is None or self.source_shape == shape:
            return f"tensor {self.source!r} has shape {shape}"
        return f"tensor {self.source!r} has shape {self.source_shape} ({shape} in PyTorch's layout)"


def is_head_key(key: str) -> bool:
    """Whether a state-dict key belongs to the head (fully-connected layers, logistic layer)."""
    return key.startswith(_HEAD_PREFIXES)


def assign_state(model: nn.Module, state: dict[str, SourceTensor], *, origin: str) -> None:
    """Copy `state` into `model` in place, checking every tensor first.

    Heads: a file without head tensors loads into a model with a head (the body is loaded, the head
    keeps its fresh initialisation: fine-tuning from a "notop" file), and a file's head is dropped
    for a model built without one (`num_classes=0`: a backbone). Anything else that does not fit
    fails with a ValueError naming the first tensor: a file tensor the model has no place for,
    else the earliest model tensor whose shape differs, else the first one the file lacks.
    Nothing is copied unless all fit.
    """
    own = model.state_dict()
    model_has_head = any(is_head_key(key) for key in own)
    dropped_head = [k for k in state if is_head_key(k) and not model_has_head]
    state = {k: v for k, v in state.items() if k not in dropped_head}
    for key, tensor in state.items():
        if key not in own:
            raise ValueError(
                f"{origin}: tensor {tensor.source!r}{'' if tensor.source == key else f' (-> {key!r})'} has no place in "
                f"{_describe(model)}; the file holds another architecture or variant"
            )
    for key in own:  # in the model's order, so the first tensor named is the earliest layer
        tensor = state.get(key)
        if tensor is not None and tuple(tensor.value.shape) != tuple(own[key].shape):
            other_classes = key.startswith("classifier.") and tensor.value.shape[1:] == own[key].shape[1:]
            hint = (
                f"create the model with num_classes={tensor.value.shape[0]}, then reset_classifier()"
                if other_classes
                else "the file holds another architecture, width or variant"
            )
            raise ValueError(
                f"{origin}: {tensor.describe()} but {key!r} of {_describe(model)} needs {tuple(own[key].shape)}; {hint}"
            )
    file_has_head = any(is_head_key(key) for key in state)
    missing = [k for k in own if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    fresh_head = [k for k in missing if is_head_key(k) and not file_has_head]
    missing = [k for k in missing if k not in fresh_head]
    if missing:
        raise ValueError(
            f"{origin}: lacks {missing[0]!r} of {_describe(model)} ({len(missing)} tensors missing); "
            "the file holds another architecture or variant, or is incomplete"
        )
    with torch.no_grad():
        for key, tensor in state.items():
            own[key].copy_(tensor.value)
    if dropped_head:
        logger.info("%s: the model has no head, dropped the file's (%s)", origin, ", ".join(dropped_head))
    if fresh_head:
        logger.info("%s has no head: loaded the body, kept a fresh head (%s)", origin, ", ".join(fresh_head))


def _describe(model: nn.Module) -> str:
    name = getattr(model, "model_name", type(model).__name__)
    return f"model {name!r} (num_classes={getattr(model, 'num_classes', '?')})"
