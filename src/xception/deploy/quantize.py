"""int8 post-training quantization, two ways: NNCF for OpenVINO, and PyTorch's PT2E flow.

- NNCF (`quantize_openvino`): the OpenVINO model read from the project's ONNX export, quantized
  with NNCF's defaults (the "performance" preset: symmetric int8 activations, per-channel int8
  weights, fast bias correction); OpenVINO then runs convolutions and matrix multiplies in int8
  with VNNI where the CPU has it.
- PT2E (`quantize_pt2e`): `torch.export`, torchao's `prepare_pt2e` / `convert_pt2e` with the
  `X86InductorQuantizer` defaults, then inductor with freezing lowers the quantize/dequantize
  pairs into oneDNN int8 convolutions (`pt2e_engine`). Max pooling stays in floating point: with
  `ceil_mode` (the TF-"same" pools on even sizes), inductor's quantized max-pool lowering computes
  the wrong output size (torch 2.14).

Both calibrate on the same images (`xception.deploy.calibration`), one image per step.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from torch import nn

from xception.deploy.engines import Engine
from xception.deploy.runtimes import (
    openvino_core,
    require_runtime,
    threads_or_torch,
    threads_text,
    torch_threads,
)
from xception.runtime import compile_model

QuantizeMethod = Literal["nncf", "pt2e"]
QUANTIZE_METHODS: tuple[QuantizeMethod, ...] = ("nncf", "pt2e")


def quantize_openvino(onnx_path: str | os.PathLike, calibration: torch.Tensor) -> Any:
    """The `openvino.Model` of `onnx_path` quantized to int8 by NNCF on `calibration` (N, C, H, W)."""
    require_runtime("openvino", "int8")
    import nncf

    model = openvino_core().read_model(str(onnx_path))
    items = [image[None].numpy() for image in calibration.float()]
    return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))


def quantize_pt2e(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """`model` (BatchNorm folded on the way) as a PT2E int8 graph module calibrated on `calibration`.

    Run eagerly it only simulates int8 (quantize/dequantize in fp32); `pt2e_engine` compiles it.
    """
    require_runtime("torch", "int8")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from xception.models.fuse import fuse_for_inference

    fused = fuse_for_inference(model).to(memory_format=torch.channels_last)
    example = calibration[:2].contiguous(memory_format=torch.channels_last)
    batch = torch.export.Dim("batch", min=1)
    graph = torch.export.export(fused, (example,), dynamic_shapes=({0: batch},)).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    quantizer.set_function_type_qconfig(torch.nn.functional.max_pool2d, None)  # see the module docstring
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for image in calibration:
            prepared(image[None].contiguous(memory_format=torch.channels_last))
    return convert_pt2e(prepared)


def pt2e_engine(quantized: nn.Module, *, threads: int | None = None) -> Engine:
    """A `quantize_pt2e` module compiled by inductor with freezing, on the CPU, each call with
    `threads` intra-op threads (default: PyTorch's); the process's own count stays as it is."""
    count = threads_or_torch(threads)
    # Static shapes: inductor's dynamic-batch recompilation of the int8 convolutions expects the
    # wrong strides for 1-channel inputs (torch 2.14); a new batch size compiles anew instead.
    quantized = compile_model(quantized, training=False, dynamic=False)

    @torch.no_grad()
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch_threads(count):
            return quantized(images.float().contiguous(memory_format=torch.channels_last)).float()

    return Engine("torch", "int8", f"PyTorch {torch.__version__} (PT2E int8, X86InductorQuantizer, inductor with "
                  f"freezing, {threads_text(count)})", run)


def save_quantized(quantized: Any, path: str | os.PathLike, *, example: torch.Tensor) -> None:
    """Write a quantized model: an `openvino.Model` as OpenVINO IR (.xml and .bin), a PT2E module
    as a torch.export program (.pt2, loadable with `torch.export.load` once torchao is imported)."""
    path = str(path)
    if isinstance(quantized, nn.Module):
        if not path.endswith(".pt2"):
            raise ValueError(f"a PT2E int8 model is saved as a .pt2 file; got {path!r}")
        batch = torch.export.Dim("batch", min=1)
        example = example.contiguous(memory_format=torch.channels_last)
        torch.export.save(torch.export.export(quantized, (example,), dynamic_shapes=({0: batch},)), path)
        return
    import openvino

    if not path.endswith(".xml"):
        raise ValueError(f"an OpenVINO int8 model is saved as an .xml file (and a .bin beside it); got {path!r}")
    openvino.save_model(quantized, path, compress_to_fp16=False)
