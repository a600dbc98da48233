"""This project's weights under timm's tensor names, for the models timm has: the inverse of
`timm_xception` and `timm_aligned`, so that a folder written by `xception export --format hub` loads
into `timm.create_model(ARCH, pretrained=True, ...)`.

The inverse is not written out rule by rule: timm builds its own model of the architecture, the
forward renaming maps each of its tensor names to ours, and that map is turned around, so the two
directions cannot drift apart. timm is needed for this (the `hub` extra).

Which models timm has, and how exactly:
- the aligned family (`xception41/65/71`, `41p/65p`): the same network, so the same logits
  (tests/test_timm_aligned.py);
- `xception`: timm's `legacy_xception` holds the same tensors but computes with BatchNorm epsilon
  1e-5 and symmetrically padded max pools, where Keras (and this project) use 1e-3 and "same"
  padding (tests/test_timm_parity.py): close, not equal;
- everything else (the ablations, the small models, a config changed from the registry's in
  anything but its training-only fields) has no timm counterpart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xception.models.registry import spec_overrides
from xception.models.spec import ModelSpec
from xception.models.weights.timm_aligned import from_timm_aligned
from xception.models.weights.timm_xception import from_timm_xception

# Our model -> timm's architecture of the same tensors.
TIMM_ARCHITECTURES = {"xception": "legacy_xception", "xception41": "xception41", "xception65": "xception65",
                      "xception71": "xception71", "xception41p": "xception41p", "xception65p": "xception65p"}
# Config fields that change training, not the function of the weights at inference.
_TRAINING_ONLY = frozenset({"bn_momentum", "drop_path_rate"})
LEGACY_DIFFERENCE = ("timm's legacy_xception computes with BatchNorm epsilon 1e-5 and symmetrically padded max "
                     "pools where this project (and Keras) use 1e-3 and 'same' padding: its logits are close to, "
                     "not equal to, this project's")


@dataclass(frozen=True)
class TimmCounterpart:
    """timm's architecture for a spec (None when there is none), whether it computes exactly as ours,
    and why not when it does not."""

    architecture: str | None
    exact: bool
    reason: str


def timm_counterpart(spec: ModelSpec) -> TimmCounterpart:
    architecture = TIMM_ARCHITECTURES.get(spec.name)
    if architecture is None:
        return TimmCounterpart(None, False, f"timm has no architecture like {spec.name!r}")
    changed = sorted(set(spec_overrides(spec)) - _TRAINING_ONLY)
    if changed:
        return TimmCounterpart(None, False, f"this {spec.name} differs from timm's {architecture} in {', '.join(changed)}")
    if spec.name == "xception":
        return TimmCounterpart(architecture, False, LEGACY_DIFFERENCE)
    return TimmCounterpart(architecture, True, "")


def timm_state_dict(model: nn.Module, spec: ModelSpec, architecture: str) -> dict[str, torch.Tensor]:
    """`model`'s tensors under the names of timm's `architecture` (built by timm, with the spec's
    classes and channels). ValueError when a tensor has no counterpart or another shape."""
    import timm

    reference = timm.create_model(architecture, pretrained=False, num_classes=spec.num_classes,
                                  in_chans=spec.in_channels)
    renamed = (from_timm_xception if architecture == "legacy_xception" else from_timm_aligned)(
        reference.state_dict(), model)
    ours = model.state_dict()
    unmatched = sorted(set(ours) - set(renamed))
    if unmatched:
        raise ValueError(f"timm's {architecture} has no tensor for {unmatched[:3]}")
    state = {}
    for our_key, source in renamed.items():
        value = ours[our_key]
        if value.shape != source.value.shape:
            raise ValueError(f"{our_key} is {tuple(value.shape)}, timm's {source.source} {tuple(source.value.shape)}")
        state[source.source] = value.detach().cpu().contiguous()
    return state
