"""A model as an `Engine` of any runtime and precision: the ONNX export for onnxruntime and
OpenVINO, post-training quantization for int8, the engines of `xception.deploy.engines` for the rest.

Above `engines`, `export` and `quantize`, below the choice and the trained-weights entry points.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import torch
from torch import nn

from xception.deploy.compiled import COMPILE_ERRORS, aot_torch_engine
from xception.deploy.engines import Engine, onnxruntime_engine, openvino_engine, torch_engine
from xception.deploy.export import export_for_runtimes
from xception.deploy.int8 import quantize_model
from xception.deploy.quantize_methods import METHOD_RUNTIMES
from xception.deploy.runtimes import Runtime, require_runtime
from xception.runtime import Precision

log = logging.getLogger(__name__)
# The int8 method of each runtime.
RUNTIME_METHODS = {runtime: method for method, runtime in METHOD_RUNTIMES.items()}

# How PyTorch runs fp32 and bf16: eager (BatchNorm folded, channels_last); inductor with freezing
# compiled in this process (`torch.compile`); or its AOTInductor package, compiled once per
# machine and cached on disk (`xception.deploy.compiled`): what `predict` and `eval` run.
TorchPath = Literal["eager", "inductor", "aot"]
TORCH_PATHS: tuple[TorchPath, ...] = ("eager", "inductor", "aot")


def build_engine(model: nn.Module, *, runtime: Runtime, precision: Precision, device: torch.device,
                 image_size: int, workdir: str | os.PathLike, threads: int | None = None,
                 calibration: torch.Tensor | None = None, torch_path: TorchPath = "eager") -> Engine:
    """`model` (eval mode, fp32) as an `Engine` of `runtime` in `precision`.

    onnxruntime and OpenVINO go through the ONNX export (written to `workdir`) and run on the CPU.
    int8 needs `calibration` images (N, C, H, W) in [-1, 1] (`xception.deploy.calibration`):
    OpenVINO quantizes with NNCF, PyTorch with PT2E (always compiled: eager PT2E is fake int8),
    onnxruntime with its own static quantizer, and the int8 engine is checked against fp32 on them
    (`xception.deploy.int8`: `Int8RefusedError` past the bound).
    `torch_path` says how PyTorch runs fp32 and bf16 (`TORCH_PATHS`); "aot" is for the CPU, and
    where its compilation fails the engine is eager PyTorch, said in one warning line.
    """
    device = torch.device(device)
    require_runtime(runtime, precision, device_type=device.type)
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration images (a few hundred from the training data)")
    if precision == "int8":  # quantized, then checked against fp32 (`xception.deploy.int8`)
        method = RUNTIME_METHODS[runtime]
        return quantize_model(model, method, calibration, image_size=image_size, threads=threads, workdir=workdir)[1]
    if runtime == "torch":
        if torch_path == "aot" and device.type == "cpu" and precision in ("fp32", "bf16"):
            try:
                return aot_torch_engine(model, precision=precision, image_size=image_size, threads=threads)
            except COMPILE_ERRORS as error:
                log.warning("PyTorch's compiled path failed (%s); running eager PyTorch", _last_line(error))
        return torch_engine(model, precision=precision, device=device, compile=torch_path == "inductor")
    onnx_path = export_for_runtimes(model, workdir, image_size=image_size)
    if runtime == "onnxruntime":
        return onnxruntime_engine(onnx_path, threads=threads)
    # OpenVINO's compiled model is cached beside the export (a persistent directory for the session).
    return openvino_engine(onnx_path, precision=precision, threads=threads, cache_dir=os.path.join(workdir, "openvino"))


def _last_line(error: BaseException) -> str:
    """The last non-empty line of `error` (where compilers put the cause), or its type's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
