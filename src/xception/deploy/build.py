"""A model as an `Engine` of any runtime and precision: the ONNX export for onnxruntime and
OpenVINO, post-training quantization for int8, the engines of `xception.deploy.engines` for the rest.

Above `engines`, `export` and `quantize`, below the choice and the trained-weights entry points.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from xception.deploy.engines import Engine, onnxruntime_engine, openvino_engine, torch_engine
from xception.deploy.export import export_for_runtimes
from xception.deploy.quantize import pt2e_engine, quantize_openvino, quantize_pt2e
from xception.deploy.runtimes import Runtime, require_runtime
from xception.runtime import Precision


def build_engine(model: nn.Module, *, runtime: Runtime, precision: Precision, device: torch.device,
                 image_size: int, workdir: str | os.PathLike, threads: int | None = None,
                 calibration: torch.Tensor | None = None, compile: bool = False) -> Engine:
    """`model` (eval mode, fp32) as an `Engine` of `runtime` in `precision`.

    onnxruntime and OpenVINO go through the ONNX export (written to `workdir`) and run on the CPU.
    int8 needs `calibration` images (N, C, H, W) in [-1, 1] (`xception.deploy.calibration`):
    OpenVINO quantizes with NNCF, PyTorch with PT2E (always compiled: eager PT2E is fake int8).
    """
    device = torch.device(device)
    require_runtime(runtime, precision, device_type=device.type)
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration images (a few hundred from the training data)")
    if runtime == "torch":
        if precision == "int8":
            return pt2e_engine(quantize_pt2e(model, calibration), threads=threads)
        return torch_engine(model, precision=precision, device=device, compile=compile)
    onnx_path = export_for_runtimes(model, workdir, image_size=image_size)
    if runtime == "onnxruntime":
        return onnxruntime_engine(onnx_path, threads=threads)
    if precision == "int8":
        return openvino_engine(quantize_openvino(onnx_path, calibration), precision="int8", threads=threads)
    return openvino_engine(onnx_path, precision=precision, threads=threads)
