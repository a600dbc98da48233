"""Device plumbing the timers need: synchronisation and autocast contexts."""

from __future__ import annotations

import contextlib

import torch

from xception.runtime import Precision

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that wall-clock time measures the work (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """`torch.autocast` for `precision`; fp32 disables it. Weights stay fp32 in every precision."""
    dtype = _DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
