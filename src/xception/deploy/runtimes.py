"""What each inference runtime needs and computes, the one availability check, the process's one
OpenVINO Core, and the CPU thread count every runtime gets.

The bottom of `xception.deploy`: it imports nothing else of the package but the probe of onnxruntime's
int8 (`xception.deploy.onnxruntime_int8`, itself importing nothing of `deploy`), and every other
module of `deploy` (the engines, export, quantization, the choice) asks here whether a runtime can run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator
from typing import Any

import torch

from xception.deploy.runtime_names import RUNTIMES, Runtime
from xception.runtime import Precision, check_precision

# The modules each runtime needs beyond PyTorch: the ONNX exporter and the runtime itself.
_MODULES: dict[Runtime, tuple[str, ...]] = {
    "torch": (),
    "onnxruntime": ("onnx", "onnxscript", "onnxruntime"),
    "openvino": ("onnx", "onnxscript", "openvino"),
}
# The smallest extra of pyproject.toml that installs each runtime (and its quantizer).
_EXTRAS: dict[Runtime, str] = {"torch": "deploy", "onnxruntime": "export", "openvino": "deploy"}
# The quantizer each runtime's int8 needs (PT2E for PyTorch, NNCF for OpenVINO; onnxruntime brings its own).
QUANTIZER_MODULES: dict[Runtime, tuple[str, ...]] = {"torch": ("torchao",), "onnxruntime": (), "openvino": ("nncf",)}

# What each runtime computes in each precision on a CPU (PyTorch's fp16 needs CUDA, see
# `xception.runtime.check_precision`).
PRECISIONS: dict[Runtime, tuple[Precision, ...]] = {
    "torch": ("fp32", "bf16", "fp16", "int8"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
# Why a runtime lacks a precision, where it is not obvious.
_NO_PRECISION = {
    ("onnxruntime", "bf16"): "onnxruntime's CPU provider has no bf16 convolutions",
}


def install_hint(runtime: Runtime) -> str:
    return f"pip install 'xception[{_EXTRAS[runtime]}]'"


def missing_modules(runtime: Runtime, precision: str | None = None) -> list[str]:
    """The modules `runtime` (and its quantizer when `precision` is int8) needs that are not installed."""
    needed = (*_MODULES[runtime], *(QUANTIZER_MODULES[runtime] if precision == "int8" else ()))
    return [name for name in needed if importlib.util.find_spec(name) is None]


def no_precision_reason(runtime: Runtime, precision: str) -> str | None:
    """Why `runtime` has no `precision` path on the CPU, or None when it has one."""
    if precision in PRECISIONS[runtime]:
        if (runtime, precision) == ("onnxruntime", "int8") and not missing_modules(runtime, precision):
            from xception.deploy.onnxruntime_int8 import int8_failure

            return int8_failure()
        return None
    return _NO_PRECISION.get((runtime, precision), f"{runtime} has no {precision} CPU path")


def unavailable_reason(runtime: str, precision: str | None = None) -> str | None:
    """Why `runtime` (in `precision`, if given) cannot run here, in one line naming the fix, or None."""
    if runtime not in _MODULES:
        return f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}"
    if precision is not None and (reason := no_precision_reason(runtime, precision)) is not None:  # type: ignore[arg-type]
        others = [p for p in PRECISIONS[runtime] if p != precision]  # type: ignore[index]
        return f"runtime {runtime} has no {precision} path ({reason}); use --precision {' or '.join(others)}"
    missing = missing_modules(runtime, precision)  # type: ignore[arg-type]
    if missing:
        return f"runtime {runtime} needs {', '.join(missing)}: {install_hint(runtime)}"  # type: ignore[arg-type]
    return None


def require_runtime(runtime: str, precision: str | None = None, *, device_type: str = "cpu") -> None:
    """The one availability check: raise a one-line ValueError, naming what to install or use
    instead, when `runtime` cannot run `precision` (if given) on a `device_type` device here."""
    if precision is not None:
        check_precision(precision, device_type, inference=True)
    reason = unavailable_reason(runtime, precision)
    if reason is not None:
        raise ValueError(reason)
    if runtime != "torch" and device_type != "cpu":
        raise ValueError(f"runtime {runtime} runs on the CPU here; use --device cpu or --runtime torch")


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


def threads_text(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


def threads_or_torch(threads: int | None) -> int:
    """`threads`, or as many as PyTorch uses: every runtime gets the same share of the machine."""
    return threads or torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to `count` inside the block and restored after it, so
    that an engine with its own thread count leaves the rest of the process as it found it."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


# The packages whose versions decide what a runtime computes and how fast: a change in any of
# them makes a cached compilation or timing stale.
_VERSIONED_PACKAGES = ("xception", "torch", "torchao", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf")


def software_versions() -> dict[str, str]:
    """{package: version} of Python and each installed package of `_VERSIONED_PACKAGES`."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
