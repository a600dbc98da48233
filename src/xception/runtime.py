"""The fastest correct execution settings for a device: precision, memory layout, compilation.

`fastest_settings` is the one place where the project's defaults for `xception train`,
`xception predict` and `xception bench` are decided; each decision carries its reason, so that a
command can say which settings it picked and why. What a precision means (`autocast_dtype`,
`autocast`, `check_precision`) and waiting for a device (`synchronize`) are defined here too, once
for training, evaluation, prediction and the timers.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from xception.cpu import cpu_has_native_bf16
from xception.precisions import Precision, TrainingPrecision  # noqa: F401  (the types' home is light)

# What `torch.autocast` computes in for each precision; fp32 is autocast off. Weights stay fp32 in all.
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype `torch.autocast` runs `precision` in (None: plain fp32); unknown names fail."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(AUTOCAST_DTYPES)}")
    return AUTOCAST_DTYPES[precision]


def check_precision(precision: str, device_type: str, *, inference: bool = False) -> None:
    """Fail, saying what to use instead, where `precision` cannot run on a `device_type` device:
    fp16 relies on loss scaling and CUDA's fp16 kernels, so it needs a CUDA GPU; int8 is
    post-training quantization, for `inference` on a CPU only. (Which runtime computes which
    precision: `xception.deploy.runtimes.require_runtime`, which calls this first.)"""
    if precision == "int8":
        if not inference:
            raise ValueError("precision int8 is post-training quantization, for inference only (xception quantize); "
                             "train in fp32, bf16 or fp16")
        if device_type != "cpu":
            raise ValueError(f"precision int8 runs on the CPU here, but the device is {device_type}; use --device cpu")
        return
    autocast_dtype(precision)
    if precision == "fp16" and device_type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA GPU (it relies on loss scaling), but the device is "
                         f"{device_type}; use --precision bf16 or fp32")


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """`torch.autocast` in `dtype` on `device_type`, or autocast off for None (plain fp32)."""
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


def grad_scaler(device_type: str, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16, whose small gradients underflow without it; a no-op otherwise."""
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that wall-clock time measures the work (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class RuntimeSettings:
    """How to run a model: autocast precision, channels_last memory format, torch.compile."""

    precision: Precision
    channels_last: bool
    compile: bool
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype for `torch.autocast`, or None for plain fp32."""
        return autocast_dtype(self.precision)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def fastest_settings(device: torch.device, *, training: bool) -> RuntimeSettings:
    """The fastest settings known to be correct for Xception-like convnets on `device`.

    bf16 autocast where the hardware computes it natively (fp32 master weights; autocast keeps
    the loss in fp32); channels_last everywhere (oneDNN and cuDNN both prefer NHWC for
    convolutions); torch.compile off by default.
    """
    # Measured on the 2-core AMD EPYC (avx512_bf16) with torch 2.14.1, 299 px, batch 16, this
    # project's Xception, interleaved rounds (the load average of each measurement is stated):
    # - bf16 vs fp32 (benchmarks/cpu.py, BENCHMARKS.md, quiet machine, 2026-11-27): training 6.0 vs
    #   3.3 img/s, inference 22.1 vs 11.4 img/s.
    # - torch.compile, training: no gain (eager 28.1 s vs compiled 30.0 s per bf16 step, median of
    #   4 rounds at load ~8) for 217 s of compilation: off.
    # - torch.compile with freezing (`compile_model`), inference: 1.58x over eager with BatchNorm
    #   folded at load ~8 (5.1 vs 8.1 s per bf16 step); at load ~3 ours (folded + compiled) is
    #   1.08-1.10x timm's eager model. 52 s to compile from a cold cache: worth it for long
    #   inference runs only, which this function cannot know: off here, on in the bench.
    # - channels_last was not A/B tested for this model here; issue 4's baseline found it the
    #   best layout for timm's Xception and torchvision's Inception V3 on this machine.
    device = torch.device(device)
    mode = "training" if training else "inference"
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return RuntimeSettings("bf16", True, False, f"{mode} on CUDA with bf16 support: bf16 autocast, channels_last")
        return RuntimeSettings("fp16", True, False, f"{mode} on CUDA without bf16: fp16 autocast, channels_last")
    if device.type == "cpu":
        if cpu_has_native_bf16():
            return RuntimeSettings(
                "bf16", True, False, f"{mode} on a CPU with native bf16 (avx512_bf16/AMX): bf16 autocast, channels_last"
            )
        return RuntimeSettings("fp32", True, False, f"{mode} on a CPU without native bf16: fp32, channels_last")
    return RuntimeSettings("fp32", False, False, f"{mode} on {device.type}: fp32, default layout (no measurements)")


def nhwc_weight_gradient_hazards(module: torch.nn.Module) -> list[str]:
    """The convolutions of `module` whose weight gradient oneDNN computes out of bounds in
    channels_last on a CPU in fp32: 1x1, strided, with fewer than 16 input channels (its 1x1 kernel
    copies the strided input into a workspace sized for a full block of 16 (AVX-512) or 8 (AVX2)
    channels: uxlfoundation/oneDNN#6035, open; seen here as heap corruption and segmentation faults
    at odd batch sizes on an AMX Xeon with torch 2.14.1, oneDNN 3.12; reported as hangs and wrong
    gradients on AVX2). Narrow models have them (`xception_small` at width 1/8: its shortcuts from 8
    channels); Xception's narrowest strided 1x1 convolution has 64."""
    return [name for name, m in module.named_modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
            and m.groups == 1 and m.in_channels < 16]


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_INT_MAX = 2**31 - 1


@functools.cache
def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    By default glibc serves every allocation above 32 MiB (most activations of a 299-pixel batch)
    with a fresh mmap and unmaps it on free, so each training step page-faults its activations in
    again and the kernel zeroes them first. With mmap off (M_MMAP_MAX = 0) and trimming only above
    2 GiB of free heap, the second step reuses the first step's pages. The cost: the process keeps
    its peak memory until it exits. The same idea as the jemalloc/tcmalloc preloads that CPU
    PyTorch performance guides recommend, without a preload. Process-wide; idempotent. Returns
    False (and changes nothing) where the C library is not glibc.

    Measured with `benchmarks/allocator_ab.py` (figures in BENCHMARKS.md).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def compile_model(model: nn.Module, *, training: bool, dynamic: bool | None = None) -> Callable[..., torch.Tensor]:
    """`torch.compile(model)`; for inference with inductor's freezing on.

    Freezing treats the weights as constants: BatchNorm folds into the convolutions, oneDNN gets
    its weights pre-packed once, and ReLU and residual additions fuse into the convolutions as
    post-ops. It needs the model's weights not to change afterwards, so it is for inference only.
    Compilation happens at the first call (about a minute for Xception on 2 CPU cores). `dynamic`
    is `torch.compile`'s (None: static first, dynamic once a second shape is seen).
    """
    compiled = torch.compile(model, dynamic=dynamic)
    if training:
        return compiled

    def run(*args: torch.Tensor) -> torch.Tensor:
        from torch._inductor import config as inductor_config

        with inductor_config.patch(freezing=True):
            return compiled(*args)

    return run
