"""What this CPU computes natively: its feature flags, as the math libraries are allowed to use them.

int8 and bf16 take different paths on different x86 CPUs, and one of them gives wrong answers if
the code does not know which it is on:
- with VNNI (avx512_vnni, avx_vnni, amx_int8), int8 dot products go straight into 32-bit sums;
- without it (an AVX2-only Zen 3, a Skylake-SP), x86 int8 kernels multiply uint8 activations by
  int8 weights with vpmaddubsw, whose 16-bit pair sums saturate (255 x 127 x 2 > 32767). Every int8
  method here then quantizes with 7 bits on one side (`xception.deploy.quantize`).

oneDNN (PyTorch's and OpenVINO's) lets a user cap the instructions it uses with the environment
variable `ONEDNN_MAX_CPU_ISA`; `cpu_flags` applies the same cap, so that the rest of the project
decides as oneDNN computes. The cap is also how the test suite emulates an older CPU on a newer one
(`tests/test_int8_isa.py`). Imports nothing but the standard library, for the command line's sake.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# CPU flags with 8-bit dot products into 32-bit sums: int8 without 16-bit saturation.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# CPU flags that make bf16 matrix multiplies native (oneDNN uses them for bf16 convolutions).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# oneDNN's ISA levels (the values of ONEDNN_MAX_CPU_ISA, its documentation's "CPU dispatcher
# control") and the /proc/cpuinfo flags each one leaves out. A flag starting with a listed prefix
# is left out; a level not listed caps nothing this project looks at.
_AVX512 = ("avx512", "amx", "avx_vnni")
_ISA_LEFT_OUT: dict[str, tuple[str, ...]] = {
    "SSE41": ("avx", "fma", *_AVX512),
    "AVX": ("avx2", "fma", *_AVX512),
    "AVX2": _AVX512,
    "AVX2_VNNI": ("avx512", "amx"),
    "AVX2_VNNI_2": ("avx512", "amx"),
    "AVX512_CORE": ("avx512_vnni", "avx512_bf16", "avx512_fp16", "amx", "avx_vnni"),
    "AVX512_CORE_VNNI": ("avx512_bf16", "avx512_fp16", "amx"),
    "AVX512_CORE_BF16": ("avx512_fp16", "amx"),
    "AVX512_CORE_FP16": ("amx",),
}
ISA_LIMIT_VARIABLE = "ONEDNN_MAX_CPU_ISA"


def isa_limit() -> str | None:
    """The oneDNN ISA cap set in the environment (upper case), or None where none is set."""
    value = os.environ.get(ISA_LIMIT_VARIABLE, "").strip().upper()
    return value or None


def hardware_flags() -> frozenset[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (empty where there is no such file)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return frozenset()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags that oneDNN may use here: `hardware_flags` less those above the
    `ONEDNN_MAX_CPU_ISA` cap, where one is set (read once per process, as oneDNN reads it)."""
    flags = hardware_flags()
    left_out = _ISA_LEFT_OUT.get(isa_limit() or "", ())
    return frozenset(flag for flag in flags if not flag.startswith(left_out))


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else `platform.processor()` (may be empty)."""
    import platform

    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 dot products in hardware (avx512_bf16 or AMX)."""
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def cpu_has_vnni() -> bool:
    """True where int8 dot products go into 32-bit sums (VNNI or AMX), free of 16-bit saturation."""
    return any(flag in cpu_flags() for flag in VNNI_FLAGS)


def cpu_features_text() -> str:
    """The features that decide the int8 and bf16 paths, in words, e.g. "AVX2, no AVX-512, no VNNI
    (int8 with 7-bit weights or activations), no native bf16", with the cap where one is set."""
    flags = cpu_flags()
    parts = ["AVX2" if "avx2" in flags else "no AVX2",
             "AVX-512" if "avx512f" in flags else "no AVX-512",
             "VNNI" if cpu_has_vnni() else "no VNNI (int8 with 7-bit weights or activations)",
             "native bf16" if cpu_has_native_bf16() else "no native bf16"]
    if "amx_int8" in flags:
        parts.append("AMX")
    text = ", ".join(parts)
    limit = isa_limit()
    if limit is not None:
        text += f" ({ISA_LIMIT_VARIABLE}={limit}: the hardware's own features are capped there)"
    return text
