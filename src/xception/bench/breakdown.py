"""Where a step's time goes: torch.profiler's per-operator self times, grouped by kind of work.

The groups are the ones that matter for Xception: dense convolutions (groups = 1: the 1x1
pointwise and the stem's 3x3, and every Inception V3 convolution), depthwise convolutions,
BatchNorm, activations, pooling, the optimizer, and the rest. A convolution's kind is read from its
weight's shape in the profiler's recorded input shapes (weight (C_out, C_in / groups, kh, kw):
depthwise when each filter sees one input channel, C_in / groups = 1, and C_out > 1), forward and
backward alike.

This is what bounds an optimisation: a step cannot be faster than the time its dense convolutions
take, and those run in the backend's GEMM-like kernels, which no model code changes (`ceiling`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

CATEGORIES = (
    "dense convolution",
    "depthwise convolution",
    "batch norm",
    "activation",
    "pooling",
    "optimizer",
    "other",
)
_ACTIVATIONS = ("relu", "threshold", "clamp_min", "elu", "hardtanh")
_OPTIMIZER = ("_foreach", "sgd", "addcmul", "lerp")


def _weight_shape(name: str, shapes: list) -> list[int] | None:
    # aten::convolution_backward(grad_output, input, weight, ...); the forward ops take (input, weight, ...).
    index = 2 if "backward" in name else 1
    if len(shapes) > index and isinstance(shapes[index], list) and len(shapes[index]) == 4:
        return shapes[index]
    return None


def categorize(name: str, shapes: list) -> str:
    """The category of one profiled operator (`name` as "aten::...", `shapes` its input shapes)."""
    lower = name.lower()
    if "conv" in lower:
        weight = _weight_shape(lower, shapes)
        if weight is not None and weight[1] == 1 and weight[0] > 1:
            return "depthwise convolution"
        return "dense convolution"
    if "batch_norm" in lower:
        return "batch norm"
    if any(word in lower for word in _ACTIVATIONS):
        return "activation"
    if "pool" in lower:
        return "pooling"
    if any(word in lower for word in _OPTIMIZER):
        return "optimizer"
    return "other"


def profile_step(step: Callable[[], None], *, repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    """Seconds of operator self time per category for one call of `step` (median over `repeats`
    profiled calls, after one unprofiled warm-up unless `warmup` is False), plus "total" (their sum).

    The first steps of a process are slower (its heap grows, pages fault in): warm every model up
    before profiling any, and interleave models rather than profile them one after another.
    """
    if warmup:
        step()
    samples: dict[str, list[float]] = {c: [] for c in (*CATEGORIES, "total")}
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
            step()
        seconds = dict.fromkeys(CATEGORIES, 0.0)
        for event in profiler.key_averages(group_by_input_shape=True):
            seconds[categorize(event.key, event.input_shapes)] += event.self_cpu_time_total / 1e6
        for category, value in seconds.items():
            samples[category].append(value)
        samples["total"].append(sum(seconds.values()))
    return {category: statistics.median(values) for category, values in samples.items()}


def dense_convolution_gflop(model: nn.Module, *, batch_size: int, image_size: int, in_channels: int = 3) -> float:
    """FLOPs (1e9; a multiply-accumulate is 2) of the forward pass's dense (groups = 1) convolutions
    for a batch, from each convolution's output shape; a training step does 3 times as many
    (forward, gradient of the input, gradient of the weights)."""
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if module.groups == 1:
            kh, kw = module.kernel_size
            total += 2 * output.numel() * module.in_channels * kh * kw

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, in_channels, image_size, image_size))
        model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return total / 1e9


@dataclass(frozen=True)
class Ceiling:
    """What meeting a speed bar against a rival leaves for everything but the dense convolutions.

    allowed_step_s: the longest our step may take, rival's step / bar.
    dense_at_rival_speed_s: our dense convolutions' FLOPs at the rival's dense-convolution GFLOP/s.
    dense_at_peak_s: the same at the measured peak (no backend does better).
    """

    allowed_step_s: float
    dense_at_rival_speed_s: float
    dense_at_peak_s: float


def ceiling(dense_gflop_per_step: float, *, rival_step_s: float, bar: float, rival_dense_gflops: float,
            peak_gflops: float) -> Ceiling:
    return Ceiling(
        allowed_step_s=rival_step_s / bar,
        dense_at_rival_speed_s=dense_gflop_per_step / rival_dense_gflops,
        dense_at_peak_s=dense_gflop_per_step / peak_gflops,
    )
