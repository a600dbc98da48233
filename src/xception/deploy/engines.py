"""A model ready for inference in one runtime and precision: PyTorch, onnxruntime or OpenVINO.

Every `Engine` takes what the model takes, (N, C, H, W) float32 images in [-1, 1], and returns
(N, num_classes) float32 logits (on the model's device for PyTorch, else the CPU), so that a caller (`xception eval`, `predict`, the
benchmark) never needs to know which runtime computes them. onnxruntime and OpenVINO run the
project's own ONNX export (`xception.models.export`, BatchNorm folded, checked against PyTorch),
on the CPU, with the same number of threads as PyTorch.

Precisions: "fp32"; "fp16" (PyTorch on CUDA); "bf16" (PyTorch autocast, OpenVINO's INFERENCE_PRECISION_HINT; onnxruntime's
CPU provider has no bf16 convolutions); "int8" (post-training quantization, `xception.deploy.quantize`;
OpenVINO runs the layers it leaves in floating point in bf16 where the CPU computes bf16 natively).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from xception.runtime import compile_model, cpu_has_native_bf16

Runtime = Literal["torch", "onnxruntime", "openvino"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnxruntime", "openvino")
EnginePrecision = Literal["fp32", "bf16", "fp16", "int8"]

INSTALL_HINT = "pip install 'xception[deploy]'"
# The modules each runtime needs beyond PyTorch: the ONNX exporter and the runtime itself.
_MODULES: dict[Runtime, tuple[str, ...]] = {
    "torch": (),
    "onnxruntime": ("onnx", "onnxscript", "onnxruntime"),
    "openvino": ("onnx", "onnxscript", "openvino"),
}
# What each runtime computes in each precision (int8 also needs a quantizer, see `quantize`).
PRECISIONS: dict[Runtime, tuple[EnginePrecision, ...]] = {
    "torch": ("fp32", "bf16", "fp16", "int8"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}


# Why a runtime lacks a precision, where it is not obvious.
_NO_PRECISION = {
    ("onnxruntime", "bf16"): "onnxruntime's CPU provider has no bf16 convolutions",
    ("onnxruntime", "int8"): "not built here: NNCF's int8 ONNX (QDQ) model fails in onnxruntime 1.32's "
    "QLinearConv (its activation zero point is not a scalar)",
}


def no_precision_reason(runtime: Runtime, precision: str) -> str | None:
    """Why `runtime` has no `precision` path on the CPU, or None when it has one."""
    if precision in PRECISIONS[runtime]:
        return None
    return _NO_PRECISION.get((runtime, precision), f"{runtime} has no {precision} CPU path")


def missing_modules(runtime: Runtime, extra: tuple[str, ...] = ()) -> list[str]:
    """The modules `runtime` (plus `extra`) needs that are not installed."""
    return [name for name in (*_MODULES[runtime], *extra) if importlib.util.find_spec(name) is None]


def require_runtime(runtime: str, extra: tuple[str, ...] = ()) -> None:
    """Raise a one-line ValueError naming what to install when `runtime` cannot run here."""
    if runtime not in _MODULES:
        raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    missing = missing_modules(runtime, extra)  # type: ignore[arg-type]
    if missing:
        raise ValueError(f"runtime {runtime} needs {', '.join(missing)}: {INSTALL_HINT}")


def check_precision(runtime: Runtime, precision: str) -> None:
    reason = no_precision_reason(runtime, precision)
    if reason is not None:
        raise ValueError(f"runtime {runtime} has no {precision} path ({reason}); use --precision "
                         f"{' or '.join(PRECISIONS[runtime])}")


@dataclass(frozen=True)
class Engine:
    """`run`: (N, C, H, W) float32 images in [-1, 1] -> (N, num_classes) float32 logits."""

    runtime: Runtime
    precision: EnginePrecision
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


def export_for_runtimes(model: nn.Module, directory: str | os.PathLike, *, image_size: int) -> Path:
    """The project's ONNX export of `model` (BatchNorm folded, dynamic batch) in `directory`,
    reused when `directory` already holds the export of the same weights at the same size (the
    benchmark builds one model for several runtimes and precisions; an export takes a minute)."""
    import hashlib

    from xception.models.export import export_model
    from xception.models.fuse import fuse_for_inference

    fused = fuse_for_inference(model)
    digest = hashlib.sha256(str(image_size).encode())
    for name, tensor in fused.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = Path(directory) / f"{getattr(model, 'model_name', type(model).__name__)}-{digest.hexdigest()[:16]}.onnx"
    if path.exists():
        return path
    return export_model(fused, path, format="onnx", image_size=image_size, batch_size=2)


def threads_text(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


def threads_or_torch(threads: int | None) -> int:
    """`threads`, or as many as PyTorch uses: every runtime gets the same share of the machine."""
    return threads or torch.get_num_threads()


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


@functools.cache
def openvino_core() -> Any:
    """The process's one `openvino.Core`, never destroyed: every OpenVINO use here goes through it.

    OpenVINO's CPU plugin installs a signal stack (sigaltstack) on the thread that creates a Core
    and, when that Core is destroyed, restores the one it found. Two Cores destroyed in the order
    they were made (the first one first) leave the thread pointing at the freed stack of the
    second, and the next signal that reaches a Python handler (Ctrl-C; the SIGCHLD of a DataLoader
    worker) kills the process with SIGSEGV (OpenVINO 2026.4; tests/test_deploy.py holds the case).
    One Core that lives as long as the process never restores anything.
    """
    require_runtime("openvino")
    import openvino

    return openvino.Core()


def openvino_engine(model: Any, *, precision: EnginePrecision, threads: int | None = None) -> Engine:
    """`model` (an ONNX or OpenVINO IR path, or an `openvino.Model`) compiled for OpenVINO's CPU plugin.

    fp32 and bf16 set INFERENCE_PRECISION_HINT (OpenVINO's default on a CPU with native bf16 is
    bf16, so fp32 must be asked for); an int8 model (from `quantize_openvino`) runs its quantized
    layers in int8 and the others in bf16 where the CPU has it, else fp32.
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
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": count,
                                                 "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def run(images: torch.Tensor) -> torch.Tensor:
        request.infer([images.float().contiguous().cpu().numpy()])
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    rest = f", the rest {hint}" if precision == "int8" else ""
    return Engine("openvino", precision, f"OpenVINO {openvino.__version__.split('-')[0]} (CPU, "
                  f"{'int8' + rest if precision == 'int8' else 'INFERENCE_PRECISION_HINT=' + hint}, {threads_text(count)})", run)


def build_engine(model: nn.Module, *, runtime: Runtime, precision: EnginePrecision, device: torch.device,
                 image_size: int, workdir: str | os.PathLike, threads: int | None = None,
                 calibration: torch.Tensor | None = None, compile: bool = False) -> Engine:
    """`model` (eval mode, fp32) as an `Engine` of `runtime` in `precision`.

    onnxruntime and OpenVINO go through the ONNX export (written to `workdir`) and run on the CPU.
    int8 needs `calibration` images (N, C, H, W) in [-1, 1] (`xception.deploy.calibration`):
    OpenVINO quantizes with NNCF, PyTorch with PT2E (always compiled: eager PT2E is fake int8).
    """
    require_runtime(runtime)
    check_precision(runtime, precision)
    device = torch.device(device)
    if runtime != "torch" and device.type != "cpu":
        raise ValueError(f"runtime {runtime} runs on the CPU here; use --device cpu or --runtime torch")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration images (a few hundred from the training data)")
    if runtime == "torch":
        if precision == "int8":
            from xception.deploy.quantize import pt2e_engine, quantize_pt2e

            return pt2e_engine(quantize_pt2e(model, calibration), threads=threads)
        return torch_engine(model, precision=precision, device=device, compile=compile)
    onnx_path = export_for_runtimes(model, workdir, image_size=image_size)
    if runtime == "onnxruntime":
        return onnxruntime_engine(onnx_path, threads=threads)
    if precision == "int8":
        from xception.deploy.quantize import quantize_openvino

        return openvino_engine(quantize_openvino(onnx_path, calibration), precision="int8", threads=threads)
    return openvino_engine(onnx_path, precision=precision, threads=threads)
