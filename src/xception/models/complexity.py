"""Parameter and multiply-accumulate counts, as Table 3 and FACTS.md report them."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters: conv and dense kernels and biases, BatchNorm gamma and beta (Table 3)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_batchnorm_statistics(model: nn.Module) -> int:
    """BatchNorm moving means and variances: Keras' "non-trainable params"."""
    return sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a (1, in_channels, size, size) image.

    Counted by `torch.utils.flop_counter` (convolutions and matrix products; 1 MAC = 2 FLOPs),
    the convention of fvcore's 8.4 G for Xception at 299 px.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, in_channels, input_size, input_size))
    model.train(was_training)
    return counter.get_total_flops() // 2
