"""Polyak averaging (section 4.2): an exponential moving average of the weights.

As TensorFlow's `ExponentialMovingAverage(decay, num_updates=global_step)`, which the paper's
TF-slim training used, the decay warms up: decay_t = min(decay, (1 + t) / (10 + t)) at update t,
so that early averages are not dominated by the random initial weights.

BatchNorm statistics policy (`bn_policy`):
- "average" (default): running_mean and running_var are averaged with the same decay as the
  weights, as TF-slim averages `tf.moving_average_variables()` together with the trainable ones.
  The averaged statistics then match the averaged weights' history rather than the live weights.
- "copy": the averaged model takes the live model's running statistics at every update.
In both, integer buffers (`num_batches_tracked`) are copied. The averaged model is always in eval
mode and never receives gradients.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

BnPolicy = Literal["average", "copy"]


class ModelAverage(nn.Module):
    """A moving average of `model`'s parameters (and, per `bn_policy`, its BatchNorm statistics)."""

    def __init__(self, model: nn.Module, *, decay: float, bn_policy: BnPolicy) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"averaging decay must be in (0, 1), got {decay}")
        if bn_policy not in ("average", "copy"):
            raise ValueError(f"unknown BatchNorm policy {bn_policy!r}; valid: average, copy")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.bn_policy = bn_policy
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next update uses: min(decay, (1 + t) / (10 + t))."""
        t = int(self.num_updates)
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (the live, unwrapped model)."""
        decay = self.current_decay()
        averaged = list(self.module.parameters())
        live = list(model.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in live], 1.0 - decay)
        # One multi-tensor call per kind of buffer rather than one small kernel per buffer: on a GPU a
        # small network's step is bound by kernel launches.
        averaged_buffers, live_averaged, copied, live_copied = [], [], [], []
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            if self.bn_policy == "average" and mine.is_floating_point():
                averaged_buffers.append(mine)
                live_averaged.append(theirs)
            else:
                copied.append(mine)
                live_copied.append(theirs)
        if averaged_buffers:
            torch._foreach_lerp_(averaged_buffers, live_averaged, 1.0 - decay)
        if copied:
            torch._foreach_copy_(copied, live_copied)
        self.num_updates += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    @staticmethod
    def weights_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The averaged model's own state dict within this module's `state_dict()` (without the
        update count)."""
        return {key.removeprefix("module."): value for key, value in state.items() if key.startswith("module.")}

    def train(self, mode: bool = True) -> ModelAverage:
        # The average is never trained: keep BatchNorm in inference mode whatever the caller asks.
        super().train(False)
        return self
