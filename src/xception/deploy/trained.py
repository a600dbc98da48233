"""A trained model's weight file as an `Engine` in the chosen runtime: what `predict` and `eval` run.

The input size comes from the weights' metadata (the ONNX export fixes it; the batch stays
dynamic), and int8 calibrates on images from the data the weights were trained on.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from torch import nn

from xception.deploy.calibration import DEFAULT_CALIBRATION_SIZE, calibration_images
from xception.deploy.choice import RuntimeChoice
from xception.deploy.engines import Engine, build_engine


def trained_engine(model: nn.Module, metadata: dict[str, Any], choice: RuntimeChoice, *, device: torch.device,
                   threads: int | None = None, data_path: str | None = None,
                   calibration_size: int = DEFAULT_CALIBRATION_SIZE) -> Engine:
    """`model` (from `load_trained_model`) as an `Engine` of `choice.runtime` in `choice.precision`."""
    data = metadata.get("data") or {}
    if "image_size" not in data and choice.runtime != "torch":
        raise ValueError("the weight file records no input size; use --runtime torch")
    calibration = None
    if choice.precision == "int8":
        calibration = calibration_images(metadata, count=calibration_size, data_path=data_path)
    with tempfile.TemporaryDirectory(prefix="xception-export-") as workdir:  # the runtimes load it whole
        return build_engine(model, runtime=choice.runtime, precision=choice.precision, device=device,
                            image_size=data.get("image_size", 0), workdir=workdir, threads=threads,
                            calibration=calibration)
