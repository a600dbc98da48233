"""The machine's measured peak for convolutions, through the same backend the models use.

The peak is the best of two large dense convolutions (3x3 and 1x1) in channels_last, under the
same autocast as the models. Measured in the same process and interleaved with the models, it
is depressed by the same background load, so "percent of peak" stays meaningful on a busy machine.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.nn import functional as F

from xception.runtime import Precision, autocast, autocast_dtype, synchronize

# (batch, in_channels, out_channels, size, kernel): large enough that the convolution is
# compute-bound (arithmetic intensity in the hundreds), small enough for a 2-core CPU.
CPU_CASES = ((8, 256, 256, 56, 3), (8, 1024, 1024, 28, 1))
CUDA_CASES = ((64, 256, 256, 56, 3), (64, 1024, 1024, 28, 1))


def conv_gflop(batch: int, in_channels: int, out_channels: int, size: int, kernel: int) -> float:
    """FLOPs of one stride-1 "same" convolution, in units of 1e9 (1 multiply-accumulate = 2 FLOPs)."""
    return 2 * batch * size * size * in_channels * out_channels * kernel * kernel / 1e9


def measure_peak(device: torch.device, *, precision: Precision, iterations: int = 3) -> dict[str, float]:
    """GFLOP/s of each dense case (median of `iterations` after one warm-up) and their best, `peak`."""
    cases = CUDA_CASES if device.type == "cuda" else CPU_CASES
    result: dict[str, float] = {}
    for batch, cin, cout, size, kernel in cases:
        x = torch.randn(batch, cin, size, size, device=device).to(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, kernel, kernel, device=device).to(memory_format=torch.channels_last)
        w = w * (2.0 / (cin * kernel * kernel)) ** 0.5
        times = []
        with torch.no_grad(), autocast(device.type, autocast_dtype(precision)):
            for i in range(iterations + 1):
                synchronize(device)
                start = time.perf_counter()
                F.conv2d(x, w, padding=kernel // 2)
                synchronize(device)
                if i:
                    times.append(time.perf_counter() - start)
        result[f"conv{kernel}x{kernel}"] = conv_gflop(batch, cin, cout, size, kernel) / statistics.median(times)
    result["peak"] = max(result.values())
    return result
