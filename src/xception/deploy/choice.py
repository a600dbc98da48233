"""The runtime and precision `xception predict` and `xception eval` use when none is asked for,
with the reason in words so that the command can print it.

On a CPU with a calibration of this machine (`xception.deploy.timings`, `xception bench
--choose`): the fastest runtime and precision measured for the model, size and batch at hand, by
latency for `predict` (one image at a time) and by throughput for `eval` (batches), among those
still installed, and the figures with the time they were measured. int8 is never a default: it
changes some answers (`xception quantize` reports how many); asked for, it is the fastest int8 measured.

Without a calibration, a preference, not a measurement, and the reason says so and how to
measure. The preference follows the kind of CPU, from `benchmarks/deploy.py` at 299 px, batch 16:
on a CPU with native bf16 (a 2-core AMD EPYC with avx512_bf16, where the three runtimes came within
10% of each other and their order changed from run to run) OpenVINO bf16, else PyTorch bf16; on a
CPU without it (an AVX2-only EPYC, issue 26) onnxruntime fp32, ahead of OpenVINO fp32 (8.8 against
7.9 img/s). On a GPU: PyTorch. int8, asked for, runs the fastest int8 of that benchmark that is
installed (`xception.deploy.quantize_methods.INT8_PREFERENCE`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

import torch

from xception.cpu import cpu_has_native_bf16
from xception.deploy.measure import Measurement
from xception.deploy.quantize_methods import INT8_PREFERENCE, METHOD_RUNTIMES
from xception.deploy.runtimes import Runtime, missing_modules, require_runtime, unavailable_reason
from xception.deploy.timings import MEASURE_HINT, Timings
from xception.runtime import Precision, check_precision, fastest_settings

Decide = Literal["latency", "throughput"]


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    precision: Precision
    reason: str
    requested: bool = False  # named by the user (--runtime), not a default
    measured: bool = False  # chosen from a calibration of this machine


def choose_runtime(device: torch.device, *, runtime: Runtime | None = None, precision: Precision | None = None,
                   timings: Timings | None = None, decide: Decide = "throughput") -> RuntimeChoice:
    """`runtime` and `precision` where given, else the fastest for `device`: measured where
    `timings` are given (by `decide`), else the preference; and why."""
    device = torch.device(device)
    if precision is not None:
        check_precision(precision, device.type, inference=True)  # fp16 on a CPU, int8 on a GPU
    if runtime is not None:
        require_runtime(runtime)
        if precision is None:
            precision = _default_precision(runtime, device)
        require_runtime(runtime, precision, device_type=device.type)
        return RuntimeChoice(runtime, precision, "--runtime given", requested=True)
    if device.type == "cpu" and timings is not None:
        measured = measured_runtime(timings, precision=precision, decide=decide)
        if measured is not None:
            return measured
    return preferred_runtime(device, precision=precision)


def measured_runtime(timings: Timings, *, precision: Precision | None, decide: Decide) -> RuntimeChoice | None:
    """The fastest of `timings` in `precision` (if None: any but int8, which changes answers and is
    never a default) that can still run here, with every figure behind the choice; None when none can."""
    usable = [m for m in timings.measurements if (m.precision == precision if precision else m.precision != "int8")
              and unavailable_reason(m.runtime, m.precision) is None]
    if not usable:
        return None
    ranked = sorted(usable, key=lambda m: m.median_s)  # one batch size: the shortest time is both
    best = ranked[0]
    figures = ", ".join(_figure(m, decide) for m in ranked)
    when = datetime.datetime.fromisoformat(timings.measured_at).strftime("%Y-%m-%d %H:%M UTC")
    what = "latency, one image" if decide == "latency" else f"throughput, batch {best.batch_size}"
    reason = (f"{best.runtime} {best.precision}: the fastest measured on this machine ({what}; {figures}; "
              f"measured {when})")
    if best.precision == "int8":
        # On some CPUs a float path beats every int8 one (a Xeon with AMX: OpenVINO bf16 1.15x the
        # fastest int8, BENCHMARKS.md); asked for int8, the user should know it buys nothing there.
        floats = [m for m in timings.measurements if m.precision != "int8" and m.median_s < best.median_s
                  and unavailable_reason(m.runtime, m.precision) is None]
        if floats:
            faster = min(floats, key=lambda m: m.median_s)
            reason += (f"; but {_figure(faster, decide)} measured faster: int8 gains no speed on this machine, "
                       "only its accuracy cost")
    return RuntimeChoice(best.runtime, best.precision, reason, measured=True)  # type: ignore[arg-type]


def _figure(m: Measurement, decide: Decide) -> str:
    value = f"{1000 * m.median_s:.1f} ms" if decide == "latency" else f"{m.images_per_s:.1f} img/s"
    return f"{m.runtime} {m.precision} {value}"


def _default_precision(runtime: Runtime, device: torch.device) -> Precision:
    """bf16 where the device computes it natively and the runtime has it, else fp32 (fp16 for
    PyTorch on a CUDA GPU without bf16, as `fastest_settings` decides)."""
    if runtime == "torch":
        return fastest_settings(device, training=False).precision
    return "bf16" if runtime == "openvino" and cpu_has_native_bf16() else "fp32"


def preferred_runtime(device: torch.device, *, precision: Precision | None = None) -> RuntimeChoice:
    """The preferred installed runtime for inference on `device` (in `precision` if given), and
    why: for a CPU, a preference from another machine's benchmark, said to be one."""
    device = torch.device(device)
    if device.type != "cpu":
        settings = fastest_settings(device, training=False)
        return RuntimeChoice("torch", precision or settings.precision, f"PyTorch on {device.type} ({settings.reason})")
    native = cpu_has_native_bf16()
    precision = precision or _default_precision("openvino", device)
    def preference_on(machine: str) -> str:
        return (f"a preference, not a measurement on this machine (the order of benchmarks/deploy.py on "
                f"{machine}); to measure: {MEASURE_HINT}")

    preference = preference_on("a 2-core AMD EPYC")
    if precision == "int8":
        for rank, method in enumerate(INT8_PREFERENCE):
            runtime = METHOD_RUNTIMES[method]
            if unavailable_reason(runtime, "int8") is None:
                which = "the fastest int8" if rank == 0 else "the fastest int8 installed"
                return RuntimeChoice(runtime, "int8", f"{runtime} int8 ({method}), {which} of benchmarks/deploy.py: "
                                     f"{preference}")  # type: ignore[arg-type]
    if precision == "fp32" and not native and not missing_modules("onnxruntime"):
        # An AVX2-only EPYC (issue 26, benchmarks/deploy.py at 299 px, batch 16): onnxruntime fp32
        # 8.8 img/s, OpenVINO fp32 7.9, PyTorch AOTInductor 6.25.
        return RuntimeChoice("onnxruntime", "fp32", f"onnxruntime fp32, the fastest fp32 on a CPU without native bf16 "
                             f"({preference_on('an AVX2-only AMD EPYC')})")
    if not missing_modules("openvino") and precision in ("fp32", "bf16", "int8"):
        return RuntimeChoice("openvino", precision, f"OpenVINO {precision}: {preference}")
    if precision == "fp32" and not missing_modules("onnxruntime"):
        return RuntimeChoice("onnxruntime", "fp32", f"onnxruntime fp32 (OpenVINO is not installed): {preference}")
    hint = "" if precision == "bf16" and native else "; pip install 'xception[deploy]' for other runtimes"
    return RuntimeChoice("torch", precision, f"PyTorch {precision}, the only runtime installed for it{hint}")
