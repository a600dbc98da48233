"""The one way to an int8 engine: quantize with one of the three methods, then compare the int8
engine with fp32 on (up to 64 of) the calibration images, and refuse it past a bound (the guard).

A quantized model can be fast and wrong: without VNNI, x86 int8 kernels sum pairs of uint8 x int8
products in 16 bits, which saturate unless the method quantizes with 7 bits on one side
(`xception.cpu`); a broken scale or layout does the same. Nothing in the model says so, only its
outputs do, so every int8 model that `xception quantize`, `xception bench --choose`, `predict`,
`eval` and `serve` build goes through `quantize_model`, which runs the check before anything is
returned, written, cached or timed. A refused model raises `Int8RefusedError` with the figures.

The bound is on the logits, relative to the largest fp32 logit. Measured on the 32-image test model
(tests/test_deploy.py): correct int8 0.10-0.21 with every method; saturated (NNCF and PT2E without
their remedies under `ONEDNN_MAX_CPU_ISA=AVX512_CORE`) 0.64-0.70, as issue 26 found on an AVX2-only
EPYC (0.67-0.69). Top-1 agreement is reported with it, and bounded where the fp32 model is decisive
enough for it to mean something (`decisive_agreement`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xception.cpu import cpu_features_text, cpu_has_vnni
from xception.deploy.engines import Engine, onnxruntime_engine, openvino_engine
from xception.deploy.export import export_for_runtimes
from xception.deploy.quantize import (
    Int8RefusedError,
    pt2e_engine,
    quantize_onnxruntime,
    quantize_openvino,
    quantize_pt2e,
)
from xception.deploy.quantize_methods import QUANTIZE_METHODS, QUANTIZED_FILES, QuantizeMethod

# Past these, an int8 model is refused: logits off by half the largest logit are wrong answers, not
# rounding; and on images whose fp32 decision is clear, int8 must take the same one.
MAX_RELATIVE_ERROR = 0.5
MIN_DECISIVE_AGREEMENT = 0.95
# The calibration images the check runs on at most (spread evenly over them).
CHECK_IMAGES = 64
# An image's fp32 decision is clear when its top-1 logit leads the second by this fraction of the
# largest logit: four times the error that correct int8 makes at most on the test model (0.21 of the
# largest logit at the very worst entry, a few hundredths typically).
DECISIVE_MARGIN = 0.25
# With VNNI each method uses its own defaults; without it, each quantizes with 7 bits on one side.
REMEDIES: dict[QuantizeMethod, str] = {
    "nncf": "NNCF's overflow fix on every layer (7-bit weights)",
    "pt2e": "7-bit activations (X86InductorQuantizer reduce_range)",
    "onnxruntime": "7-bit weights (quantize_static reduce_range)",
}


@dataclass(frozen=True)
class Int8Check:
    """How far an int8 model's logits are from fp32's on the same images."""

    images: int
    relative_error: float  # max |int8 - fp32| / max |fp32| over all logits
    agreement: float  # fraction of images with the same top-1 class
    decisive_images: int  # images whose fp32 top-1 leads by DECISIVE_MARGIN of the largest logit
    decisive_agreement: float  # the agreement on those (1.0 where there are none)

    @property
    def passed(self) -> bool:
        return self.relative_error <= MAX_RELATIVE_ERROR and self.decisive_agreement >= MIN_DECISIVE_AGREEMENT

    def text(self) -> str:
        return (f"relative logit error {self.relative_error:.3f} (bound {MAX_RELATIVE_ERROR}), top-1 agreement "
                f"{100 * self.agreement:.1f}% of {self.images} calibration images, {100 * self.decisive_agreement:.1f}% "
                f"of the {self.decisive_images} with a clear fp32 decision (bound {100 * MIN_DECISIVE_AGREEMENT:.0f}%)")

    def to_json(self) -> dict[str, Any]:
        return dict(dataclasses.asdict(self), passed=self.passed)


def check_int8(reference: torch.Tensor, candidate: torch.Tensor) -> Int8Check:
    """Compare int8 logits `candidate` with fp32 logits `reference`, both (N, num_classes)."""
    reference, candidate = reference.double(), candidate.double()
    scale = float(reference.abs().max()) or 1.0
    error = float((candidate - reference).abs().max()) / scale
    same = reference.argmax(1) == candidate.argmax(1)
    top2 = reference.topk(2, dim=1).values if reference.shape[1] > 1 else reference.expand(-1, 2)
    decisive = (top2[:, 0] - top2[:, 1]) >= DECISIVE_MARGIN * scale
    agreement_on_decisive = float(same[decisive].double().mean()) if bool(decisive.any()) else 1.0
    return Int8Check(int(reference.shape[0]), error, float(same.double().mean()), int(decisive.sum()),
                     agreement_on_decisive)


def remedy_text(method: QuantizeMethod) -> str:
    """What `method` does on this CPU against 16-bit saturation, in words ("" with VNNI)."""
    return "" if cpu_has_vnni() else f"no VNNI: {REMEDIES[method]}"


def quantize_model(model: nn.Module, method: QuantizeMethod, calibration: torch.Tensor, *, image_size: int,
                   threads: int | None = None, workdir: str | os.PathLike | None = None
                   ) -> tuple[Any, Engine, Int8Check]:
    """`model` (eval mode, fp32) quantized by `method` on `calibration` (N, C, H, W) in [-1, 1]: the int8
    model (for `save_quantized`), its engine, and its check against fp32 on `calibration`.

    Raises `Int8RefusedError` where the check fails: the model is then never returned."""
    if method not in QUANTIZE_METHODS:
        raise ValueError(f"unknown quantization method {method!r}; valid: {', '.join(QUANTIZE_METHODS)}")
    if method == "pt2e":
        quantized = quantize_pt2e(model, calibration)
        engine = pt2e_engine(quantized, threads=threads)
        return _checked(model, method, quantized, engine, calibration)
    with tempfile.TemporaryDirectory(prefix="xception-int8-") as scratch:  # the runtimes load it whole
        # The fp32 export may come from (and go to) `workdir`, a cache; the int8 model is this call's own.
        onnx_path = export_for_runtimes(model, workdir if workdir is not None else scratch, image_size=image_size)
        if method == "nncf":
            quantized = quantize_openvino(onnx_path, calibration)
            engine = openvino_engine(quantized, precision="int8", threads=threads)
            return _checked(model, method, quantized, engine, calibration)
        import onnx

        path = quantize_onnxruntime(onnx_path, calibration, os.path.join(scratch, QUANTIZED_FILES[method]))
        engine = onnxruntime_engine(path, threads=threads)
        return _checked(model, method, onnx.load(str(path)), engine, calibration)


def _checked(model: nn.Module, method: QuantizeMethod, quantized: Any, engine: Engine,
             calibration: torch.Tensor) -> tuple[Any, Engine, Int8Check]:
    # Saturation and broken scales are systematic: CHECK_IMAGES spread over the calibration set show
    # them, without an fp32 pass over all of it (300 images of `xception` at 299 px: ~40 s on 2 cores).
    chosen = torch.linspace(0, len(calibration) - 1, min(CHECK_IMAGES, len(calibration))).round().long().unique()
    images = calibration[chosen].float()
    with torch.no_grad():
        reference = torch.cat([model(batch) for batch in images.split(16)])
    candidate = torch.cat([engine(batch) for batch in images.split(16)])
    check = check_int8(reference.cpu(), candidate.cpu())
    if not check.passed:
        raise Int8RefusedError(
            f"{method} int8 refused: its outputs are too far from fp32's ({check.text()}); on this CPU "
            f"({cpu_features_text()}) it gives wrong answers. Use fp32 or bf16, or another method "
            f"(xception quantize --method all compares them)")
    if remedy := remedy_text(method):
        engine = dataclasses.replace(engine, description=f"{engine.description}; {remedy}")
    return quantized, engine, check
