"""The runtime and precision `xception predict` and `xception eval` use when none is asked for.

The fastest installed runtime for the device, by measurement, with the reason in words so that the
command can print it. Inference throughput of `xception` at 299 px, batch 16, 2 threads, on this
project's 2-core AMD EPYC (avx512_bf16, avx512_vnni), all fed the project's ONNX export, side by
side in one process, 5 interleaved rounds, median images/s (issue 13; `benchmarks/deploy.py`
reruns it):

| runtime | fp32 | bf16 |
|---|---:|---:|
| PyTorch, BatchNorm folded, inductor with freezing, channels_last | 7.6 | 15.0 |
| onnxruntime 1.32 (CPU provider) | 10.0 | - |
| OpenVINO 2026.4 (INFERENCE_PRECISION_HINT) | 10.1 | 19.7 |

So on a CPU: OpenVINO where it is installed (bf16 where the CPU computes bf16 natively, else
fp32); else PyTorch bf16 on a native-bf16 CPU (faster than onnxruntime's fp32) and onnxruntime
fp32 on the others. On a GPU: PyTorch (the other runtimes run on the CPU here). int8 is never a
default precision: it needs calibration and changes some answers (`xception quantize` reports how
many). Asked for (`--precision int8`), it runs where int8 measured fastest: PyTorch's PT2E
(inductor, oneDNN int8) at 28.7 img/s, 1.48x the best bf16, against NNCF's int8 in OpenVINO at
25.3 img/s, 1.30x (benchmarks/results/deploy.md; both lose under 0.1 top-1 points on the demo
model); OpenVINO's NNCF where torchao is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xception.deploy.runtimes import Runtime, missing_modules, require_runtime
from xception.runtime import Precision, check_precision, cpu_has_native_bf16, fastest_settings


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    precision: Precision
    reason: str
    requested: bool = False  # named by the user (--runtime), not a default


def choose_runtime(device: torch.device, *, runtime: Runtime | None = None,
                   precision: Precision | None = None) -> RuntimeChoice:
    """`runtime` and `precision` where given, else the fastest installed for `device`, and why."""
    device = torch.device(device)
    if precision is not None:
        check_precision(precision, device.type, inference=True)  # fp16 on a CPU, int8 on a GPU
    if runtime is not None:
        require_runtime(runtime)
        if precision is None:
            precision = _default_precision(runtime, device)
        require_runtime(runtime, precision, device_type=device.type)
        return RuntimeChoice(runtime, precision, "--runtime given", requested=True)
    return fastest_runtime(device, precision=precision)


def _default_precision(runtime: Runtime, device: torch.device) -> Precision:
    """bf16 where the device computes it natively and the runtime has it, else fp32 (fp16 for
    PyTorch on a CUDA GPU without bf16, as `fastest_settings` decides)."""
    if runtime == "torch":
        return fastest_settings(device, training=False).precision
    return "bf16" if runtime == "openvino" and cpu_has_native_bf16() else "fp32"


def fastest_runtime(device: torch.device, *, precision: Precision | None = None) -> RuntimeChoice:
    """The fastest installed runtime for inference on `device` (in `precision` if given) and why."""
    device = torch.device(device)
    if device.type != "cpu":
        settings = fastest_settings(device, training=False)
        return RuntimeChoice("torch", precision or settings.precision, f"PyTorch on {device.type} ({settings.reason})")
    native = cpu_has_native_bf16()
    precision = precision or _default_precision("openvino", device)
    measured = "the fastest CPU runtime measured (benchmarks/deploy.py)"
    if precision == "int8" and not missing_modules("torch", "int8"):
        return RuntimeChoice("torch", "int8", "PyTorch int8 (PT2E): the fastest CPU int8 measured, 1.48x the best "
                             "bf16 where OpenVINO's NNCF int8 gave 1.30x (benchmarks/deploy.py)")
    if not missing_modules("openvino") and precision in ("fp32", "bf16", "int8"):
        return RuntimeChoice("openvino", precision, f"OpenVINO {precision}: {measured}")
    if precision == "fp32" and not missing_modules("onnxruntime"):
        return RuntimeChoice("onnxruntime", "fp32", f"onnxruntime fp32: {measured} without OpenVINO installed")
    hint = "" if precision == "bf16" and native else "; pip install 'xception[deploy]' for faster runtimes"
    return RuntimeChoice("torch", precision, f"PyTorch {precision}: the fastest installed runtime{hint}")
