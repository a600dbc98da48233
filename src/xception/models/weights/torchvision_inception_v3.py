"""torchvision's Inception V3 state dict -> this project's `InceptionV3` state dict.

Module names are torchvision's on purpose (see `inception_v3.py`), so the conversion only renames
the logistic layer (`fc` -> `classifier`) and drops the auxiliary tower (`AuxLogits.*`), which
the paper does not use. Tensors are passed through unchanged (same layouts, BatchNorm eps 1e-3).
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from xception.models.inception_v3 import InceptionV3, InceptionV3Config

_RENAMES = {"fc.weight": "classifier.weight", "fc.bias": "classifier.bias"}


@cache
def _trunk_keys() -> frozenset[str]:
    """Every state-dict key of the paper's InceptionV3 without its head (built on the meta device)."""
    with torch.device("meta"):
        model = InceptionV3(InceptionV3Config(), num_classes=0, in_channels=3, drop_rate=0.0)
    return frozenset(model.state_dict())


def convert_torchvision_inception_v3(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision's `Inception3` keys to ours: drop `AuxLogits.*`, rename `fc` to `classifier`.

    Accepts a state dict of `torchvision.models.inception_v3` with or without the auxiliary tower
    and the logistic layer, and with or without BatchNorm's `num_batches_tracked` (PyTorch fills
    it in on load). The result loads into `create_model("inception_v3", num_classes=...)` when
    the number of classes matches `fc`. Raises ValueError naming the first key that is not
    torchvision's, or the first trunk tensor that is missing.
    """
    trunk = _trunk_keys()
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("AuxLogits."):
            continue
        if key in _RENAMES:
            converted[_RENAMES[key]] = value
        elif key in trunk:
            converted[key] = value
        else:
            hint = " (strip the 'module.' prefix DataParallel adds first)" if key.startswith("module.") else ""
            raise ValueError(
                f"unexpected key {key!r} in a torchvision Inception V3 state dict{hint}; expected the "
                "keys of torchvision.models.inception_v3 (Conv2d_*, Mixed_*, AuxLogits.*, fc.*)"
            )
    missing = sorted(k for k in trunk - converted.keys() if not k.endswith("num_batches_tracked"))
    if missing:
        raise ValueError(
            f"torchvision Inception V3 state dict lacks {len(missing)} tensor(s), first {missing[0]!r}; "
            "is it from another architecture or a truncated file?"
        )
    return converted
