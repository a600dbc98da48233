"""A trained model's weight file quantized to int8, with what that costs on its validation split
(what `xception quantize` runs): a user of the inference session, which opens the weights and runs
the eager fp32 reference; the int8 models come from the one int8 builder
(`xception.deploy.int8.quantize_model`, with its guard), calibrated on images from the data the
weights were trained on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xception.atomic_write import write_bytes_atomic
from xception.cpu import cpu_features_text, cpu_has_vnni, cpu_model
from xception.deploy.calibration import calibration_images
from xception.deploy.cost import agreement_report, engine_logits
from xception.deploy.int8 import Int8Check, Int8RefusedError, quantize_model
from xception.deploy.quantize import save_quantized
from xception.deploy.quantize_methods import QUANTIZED_FILES, QuantizeMethod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantized:
    """One int8 quantization of trained weights and what it costs on their validation split."""

    method: QuantizeMethod
    description: str  # the int8 engine's settings in words
    cost: dict[str, Any]  # `agreement_report` of int8 against eager fp32
    quantize_s: float  # calibration, conversion and the check against fp32, without the evaluation
    check: Int8Check  # the guard's comparison with fp32 on the calibration images
    model: Any  # an `openvino.Model` (nncf), a PT2E graph module or an `onnx.ModelProto`, for `save_quantized`


def quantize_weights(weights: str, *, methods: tuple[QuantizeMethod, ...], calibration_size: int,
                     data_path: str | None = None, threads: int | None = None,
                     batch_size: int = 250) -> list[Quantized]:
    """Quantize a single-label weight file with each of `methods` on `calibration_size` training
    images, and measure each int8 model against the eager fp32 one on the whole validation split
    (top-1 of both, points lost, top-1 agreement). On the CPU."""
    from xception.data import build_datasets
    from xception.data.config import recorded_data_config
    from xception.inference.session import InferenceSession

    session = InferenceSession.open(weights, runtime="torch", precision="fp32", device="cpu",
                                    torch_path="eager")
    model, description = session.model, session.description
    if description.multilabel:
        raise ValueError(f"{weights} is multi-label; the int8 cost is measured with top-1, for single-label weights")
    calibration = calibration_images(description, count=calibration_size, data_path=data_path)
    validation = build_datasets(recorded_data_config(description, path=data_path)).val
    reference, targets = engine_logits(session.engine, validation, batch_size=batch_size)
    results = []
    for method in methods:
        start = time.perf_counter()
        try:
            quantized, engine, check = quantize_model(model, method, calibration, image_size=description.image_size,
                                                      threads=threads)
        except Int8RefusedError as error:
            if len(methods) == 1:
                raise
            log.warning("%s", error)
            continue
        seconds = time.perf_counter() - start
        logits, _ = engine_logits(engine, validation, batch_size=batch_size)
        results.append(Quantized(method, engine.description, agreement_report(reference, logits, targets), seconds,
                                 check, quantized))
    if not results:
        raise Int8RefusedError(f"every int8 method was refused on this CPU ({cpu_features_text()}), as the "
                               "warnings above say; use fp32 or bf16")
    return results


def best_quantized(results: list[Quantized]) -> Quantized:
    """The quantization that loses the fewest top-1 points (ties: the higher agreement)."""
    return min(results, key=lambda q: (q.cost["points_lost"], -q.cost["agreement"]))


def write_quantized(results: list[Quantized], directory: str | os.PathLike, *, weights: str,
                    calibration_size: int) -> list[Path]:
    """Each int8 model of `results` in `directory` (`QUANTIZED_FILES`: int8_nncf.xml + .bin,
    int8_pt2e.pt2, int8_onnxruntime.onnx) and the measurements in int8.json (with the better
    method named); the paths written."""
    from xception.models.trained import read_description

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    description = read_description(weights)
    size = description.image_size
    example = torch.zeros(2, description.in_channels, size, size)
    paths = []
    for q in results:
        paths.append(directory / QUANTIZED_FILES[q.method])
        save_quantized(q.model, paths[-1], example=example)
    report = dict(weights=str(weights), calibration_size=calibration_size, better=best_quantized(results).method,
                  cpu=dict(model=cpu_model(), features=cpu_features_text(), vnni=cpu_has_vnni()),
                  results=[dict(method=q.method, engine=q.description, quantize_s=q.quantize_s, **q.cost,
                                check=q.check.to_json()) for q in results])
    paths.append(write_bytes_atomic(directory / "int8.json", (json.dumps(report, indent=2) + "\n").encode()))
    return paths
