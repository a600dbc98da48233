"""A model ready for inference in one runtime and precision: PyTorch, onnxruntime or OpenVINO.

Every `Engine` takes what the model takes, (N, C, H, W) float32 images in [-1, 1], and returns
(N, num_classes) float32 logits (on the model's device for PyTorch, else the CPU), so that a caller (`xception eval`, `predict`, the
benchmark) never needs to know which runtime computes them. onnxruntime and OpenVINO run the
project's own ONNX export (`xception.deploy.export`, BatchNorm folded, checked against PyTorch),
on the CPU, with the same number of threads as PyTorch.

Precisions: "fp32"; "fp16" (PyTorch on CUDA); "bf16" (PyTorch autocast, OpenVINO's INFERENCE_PRECISION_HINT; onnxruntime's
CPU provider has no bf16 convolutions); "int8" (post-training quantization, `xception.deploy.quantize`;
OpenVINO runs the layers it leaves in floating point in bf16 where the CPU computes bf16 natively).

The bottom of `xception.deploy` with `runtimes`: engine building (`build`), quantization and
export sit above it and import it, never the other way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from xception.cpu import cpu_has_native_bf16
from xception.deploy.runtimes import (
    Runtime,
    openvino_core,
    require_runtime,
    threads_or_torch,
    threads_text,
)
from xception.runtime import Precision, compile_model


@dataclass(frozen=True)
class Engine:
    """`run`: (N, C, H, W) float32 images in [-1, 1] -> (N, num_classes) float32 logits."""

    runtime: Runtime
    precision: Precision
    description: str  # the settings in words, e.g. "OpenVINO 2026.4.1, INFERENCE_PRECISION_HINT=bf16, 2 threads"
    run: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(images)


def torch_engine(model: nn.Module, *, precision: Literal["fp32", "bf16", "fp16"], device: torch.device,
                 compile: bool = False) -> Engine:
    """A copy of `model` in eval mode on `device`, BatchNorm folded, channels_last, in `precision`;
    `compile`: inductor with freezing (`xception.runtime.compile_model`).

    bf16 on a CPU without compilation stores the weights in bf16 instead of autocasting: autocast
    casts every convolution's weights again at every call (`aten::copy_`, 6% of an eager bf16
    forward's CPU time in the profiler at 299 px, batch 16), and the logits are the same, since
    autocast runs the same bf16 convolutions. Elsewhere autocast (freezing folds its casts).
    """
    from xception.models.fuse import fuse_for_inference

    device = torch.device(device)
    model = fuse_for_inference(model)  # a copy: `model` itself stays as it is
    model = model.to(device, memory_format=torch.channels_last)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    cast_weights = dtype == torch.bfloat16 and device.type == "cpu" and not compile
    if cast_weights:
        model = model.to(dtype)
    forward = compile_model(model, training=False) if compile else model

    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        if cast_weights:
            return forward(images.to(dtype)).float()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return forward(images).float()

    arithmetic = "bf16 weights" if cast_weights else (f"{precision} autocast" if dtype else "fp32")
    settings = ["BatchNorm folded", "channels_last", arithmetic]
    if compile:
        settings.append("inductor with freezing")
    return Engine("torch", precision, f"PyTorch {torch.__version__} ({', '.join(settings)}) on {device}", run)


def onnxruntime_engine(onnx_path: str | os.PathLike, *, threads: int | None = None) -> Engine:
    """An onnxruntime CPU session of `onnx_path` (all graph optimizations, `threads` intra-op threads)."""
    require_runtime("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads_or_torch(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    # QuantizeLinear/DequantizeLinear in the graph: onnxruntime fuses them into int8 kernels.
    precision = "int8" if any(node.op_type == "QuantizeLinear" for node in _onnx_nodes(onnx_path)) else "fp32"

    def run(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: images.float().contiguous().cpu().numpy()})[0])

    return Engine("onnxruntime", precision, f"onnxruntime {onnxruntime.__version__} (CPU provider, "  # type: ignore[arg-type]
                  f"{threads_text(options.intra_op_num_threads)})", run)


def _onnx_nodes(path: str | os.PathLike) -> list[Any]:
    import onnx

    return list(onnx.load(str(path), load_external_data=False).graph.node)


def openvino_engine(model: Any, *, precision: Precision, threads: int | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Engine:
    """`model` (an ONNX or OpenVINO IR path, or an `openvino.Model`) compiled for OpenVINO's CPU plugin.

    fp32 and bf16 set INFERENCE_PRECISION_HINT (OpenVINO's default on a CPU with native bf16 is
    bf16, so fp32 must be asked for); an int8 model (from `quantize_openvino`) runs its quantized
    layers in int8 and the others in bf16 where the CPU has it, else fp32. `cache_dir`: OpenVINO's
    own model cache (CACHE_DIR), which keys each compiled model by the model, the settings, the CPU
    and OpenVINO's version, so that a later process with the same ones loads it instead of compiling.
    """
    require_runtime("openvino")
    import openvino

    core = openvino_core()
    if not isinstance(model, openvino.Model):
        model = core.read_model(str(model))
    native_bf16 = cpu_has_native_bf16()
    if precision == "bf16" and not native_bf16:
        raise ValueError("OpenVINO bf16 needs a CPU with native bf16 (avx512_bf16 or AMX); use fp32")
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "bf16" if native_bf16 else "f32"}[precision]
    count = threads_or_torch(threads)
    settings = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": count, "PERFORMANCE_HINT": "LATENCY"}
    if cache_dir is not None:
        settings["CACHE_DIR"] = str(cache_dir)
    compiled = core.compile_model(model, "CPU", settings)
    request = compiled.create_infer_request()

    def run(images: torch.Tensor) -> torch.Tensor:
        request.infer([images.float().contiguous().cpu().numpy()])
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    rest = f", the rest {hint}" if precision == "int8" else ""
    return Engine("openvino", precision, f"OpenVINO {openvino.__version__.split('-')[0]} (CPU, "
                  f"{'int8' + rest if precision == 'int8' else 'INFERENCE_PRECISION_HINT=' + hint}, {threads_text(count)})", run)
