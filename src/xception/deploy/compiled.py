"""PyTorch's fast inference path, compiled once per machine and reused by every later process:
BatchNorm folded, channels_last, inductor with freezing, packaged by AOTInductor on disk.

`torch.compile` with freezing is what the benchmarks measure, but it compiles again in every
process (about a minute for Xception on 2 cores), which a one-image `xception predict` cannot
afford. AOTInductor (`torch._inductor.aoti_compile_and_package`) compiles the same graph ahead of
time into a shared library inside a .pt2 package; loading it takes milliseconds
(`torch._inductor.aoti_load_package`). The package is cached in `$XCEPTION_HOME/compiled/`, named
by a digest of the folded weights, the precision, the input size, the CPU (model and flags: the
generated code uses the host's vector instructions) and the versions of the software, so that any
change compiles anew and nothing stale is ever loaded. The batch dimension stays dynamic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from xception.atomic_write import temporary_path
from xception.cpu import cpu_flags, cpu_model
from xception.deploy.digest import weights_digest
from xception.deploy.engines import Engine
from xception.deploy.runtimes import software_versions, threads_or_torch, threads_text, torch_threads
from xception.home import xception_home

log = logging.getLogger(__name__)

# What a failed ahead-of-time compilation raises: inductor's errors (RuntimeError subclasses), a
# C++ compiler that fails or is missing. Anything else is a bug and keeps its traceback.
COMPILE_ERRORS = (RuntimeError, OSError, subprocess.SubprocessError)


# Part of every package's key: a change of how packages are built never loads an older one.
PACKAGE_FORMAT = 2


class _CastInput(nn.Module):
    """`model` (weights already in `dtype`) on (N, C, H, W) float32 images, cast to `dtype` (and
    to `memory_format`) inside the compiled graph; float32 logits out."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, memory_format: torch.memory_format) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.memory_format = memory_format

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.dtype).contiguous(memory_format=self.memory_format)).float()


@contextlib.contextmanager
def _quiet_cpp_extension() -> Iterator[None]:
    """torch's C++ extension logger off for the block: building or loading a CPU package logs "No
    CUDA runtime is found, using CUDA_HOME=..." on machines without CUDA, which says nothing to a
    user of the CPU path. Restored after."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def compiled_home() -> Path:
    return xception_home() / "compiled"


def package_path(model: nn.Module, *, precision: str, image_size: int, directory: Path | None = None) -> Path:
    """Where the AOTInductor package of `model` (its weights as they are) in `precision` at
    `image_size` px is cached on this machine with this software."""
    key = weights_digest(model, PACKAGE_FORMAT, precision, image_size, cpu_model(), sorted(cpu_flags()),
                         software_versions())
    name = getattr(model, "model_name", type(model).__name__)
    return (directory or compiled_home()) / f"{name}-{precision}-{image_size}px-{key[:20]}.pt2"


def aot_torch_engine(model: nn.Module, *, precision: Literal["fp32", "bf16"], image_size: int,
                     threads: int | None = None, directory: Path | None = None) -> Engine:
    """`model` (eval mode, fp32) as a CPU `Engine` of its AOTInductor package, compiled into the
    cache first when it is not there. Raises one of `COMPILE_ERRORS` when compilation fails
    (the caller falls back to eager PyTorch and says so)."""
    from xception.models.fuse import fuse_for_inference

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"the compiled PyTorch path runs fp32 or bf16 on the CPU, not {precision}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # bf16 weights rather than autocast: the same bf16 convolutions, and a graph with no casts to trace.
    # channels_last, as the benchmarks measured, but for 1-channel inputs: their channels_last and
    # contiguous strides coincide, and AOTInductor with freezing then computed logits off by ~2e-3 of
    # their range (a segmentation mask visibly different; torch 2.14), where the contiguous model is
    # exact (inductor's layout optimization still picks the convolutions' layout).
    in_channels = getattr(model, "in_channels", 3)
    layout = torch.contiguous_format if in_channels == 1 else torch.channels_last
    fused = fuse_for_inference(model).to(dtype=dtype, memory_format=layout).eval()
    path = package_path(model, precision=precision, image_size=image_size, directory=directory)
    state = "cached"
    if not path.exists():
        start = time.perf_counter()
        _compile_package(_CastInput(fused, dtype, layout).eval(), path, in_channels=in_channels, image_size=image_size)
        state = f"compiled in {time.perf_counter() - start:.0f} s"
    with _quiet_cpp_extension():
        runner = torch._inductor.aoti_load_package(str(path))
    count = threads_or_torch(threads)

    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch_threads(count):
            return runner(images.float().cpu())

    layout_text = "contiguous" if layout == torch.contiguous_format else "channels_last"
    return Engine("torch", precision, f"PyTorch {torch.__version__} (BatchNorm folded, {layout_text}, {precision}, "
                  f"AOTInductor with freezing, {state}: {path}, {threads_text(count)})", run)


def _compile_package(module: nn.Module, path: Path, *, in_channels: int, image_size: int) -> None:
    """Export `module` with a dynamic batch and compile it ahead of time into the package `path`,
    written under a temporary name and renamed, so that a killed compilation leaves no package."""
    log.warning("compiling PyTorch's fast path once for these weights on this machine (a minute or more; "
                "cached in %s)", path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, in_channels, image_size, image_size)
    batch = torch.export.Dim("batch", min=1)
    tmp = temporary_path(path).with_suffix(".pt2")  # the packager wants the suffix
    try:
        with torch.no_grad(), _quiet_cpp_extension():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp),
                                                     inductor_configs={"freezing": True})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
