"""A trained classifier exported to take what an image decoder gives: uint8 pixels (N, H, W, C) at
the model's input size, scaled to [-1, 1] inside the graph, with the class names and the preparation
in the file's metadata, so that ONNX Runtime, OpenVINO Model Server, Triton or KServe can serve it
with no code of this project (`xception export --raw-input`).

The resize and centre crop stay outside: a decoder's resize is not PIL's bicubic, and the client
knows its images (the metadata key "preparation" says what the weights were evaluated with).
Outputs: "logits" and "probabilities" (softmax, or a sigmoid per class for multi-label weights, of
the logits divided by the temperature of the weights' decision policy where they carry one), both
(N, num_classes) float32; the policy's threshold and its rule are in the metadata ("decision"). Metadata: ONNX `metadata_props`, OpenVINO `rt_info` under "xception"
(and the class names, space-free, under model_info/labels, where OpenVINO's tools look for them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from xception.description import WeightsDescription
from xception.tasks.decision import calibrated_logits

RawInputFormat = Literal["onnx", "openvino"]
RAW_INPUT_FORMATS: tuple[RawInputFormat, ...] = ("onnx", "openvino")


class RawInputModel(nn.Module):
    """uint8 images (N, H, W, C) -> (logits, probabilities), each (N, num_classes) float32, through
    `model`, which takes (N, C, H, W) float32 in [-1, 1]; the probabilities of logits / `temperature`."""

    def __init__(self, model: nn.Module, *, multilabel: bool, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.multilabel, self.temperature = model, multilabel, temperature

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The same arithmetic as the preparation's ToDtype(scale=True) then Normalize(0.5, 0.5).
        x = (images.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
        logits = self.model(x)
        scaled = logits / self.temperature if self.temperature != 1 else logits
        return logits, scaled.sigmoid() if self.multilabel else scaled.softmax(dim=1)


def raw_input_metadata(description: WeightsDescription, *, image_size: int) -> dict[str, str]:
    """The entries written into the file: strings, JSON where structured."""
    channels = description.in_channels
    preparation = dataclasses.asdict(description.preprocessing) if description.preprocessing else {}
    decision = {"decision": json.dumps(dataclasses.asdict(description.decision))} if description.decision else {}
    return {
        "model_name": description.model_name,
        "class_names": json.dumps(list(description.class_names)),
        "input": f"images: uint8 (N, {image_size}, {image_size}, {channels}), NHWC, "
                 f"{'RGB' if channels == 3 else 'grayscale'}, scaled to [-1, 1] inside",
        "outputs": "logits, probabilities: float32 (N, num_classes)",
        "preparation": json.dumps({k: preparation.get(k) for k in ("image_size", "crop_fraction", "interpolation",
                                                                    "resize") if preparation.get(k) is not None}),
        "multilabel": json.dumps(description.multilabel),
        **decision,
    }


def export_raw_input(model: nn.Module, description: WeightsDescription, path: str | os.PathLike, *,
                     format: RawInputFormat, image_size: int) -> Path:
    """Write `model` (from `open_weights`, with its `description`) to `path` (.onnx, or .xml for
    OpenVINO IR) as a raw-input model, BatchNorm folded, dynamic batch."""
    from xception.models.fuse import fuse_for_inference

    if format not in RAW_INPUT_FORMATS:
        raise ValueError(f"--raw-input exports to {' or '.join(RAW_INPUT_FORMATS)}, not {format}")
    if not description.class_names:
        raise ValueError("--raw-input needs weights that name their classes (a file from training or convert)")
    path = Path(path)
    if path.suffix != {"onnx": ".onnx", "openvino": ".xml"}[format]:
        raise ValueError(f"a raw-input {format} export is a {'.onnx' if format == 'onnx' else '.xml'} file; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = raw_input_metadata(description, image_size=image_size)
    temperature = description.decision.temperature if description.decision else 1.0
    wrapper = RawInputModel(fuse_for_inference(model), multilabel=description.multilabel,
                            temperature=temperature).eval()
    if format == "onnx":
        _write_onnx(wrapper, path, image_size=image_size, in_channels=description.in_channels, entries=entries)
        return path
    import openvino

    with tempfile.TemporaryDirectory(prefix="xception-export-") as directory:
        onnx_path = _write_onnx(wrapper, Path(directory) / "model.onnx", image_size=image_size,
                                in_channels=description.in_channels, entries=entries)
        converted = openvino.convert_model(str(onnx_path))
    for key, value in entries.items():
        converted.set_rt_info(value, ["xception", key])
    labels = " ".join(name.replace(" ", "_") for name in json.loads(entries["class_names"]))
    converted.set_rt_info(labels, ["model_info", "labels"])
    openvino.save_model(converted, str(path), compress_to_fp16=False)
    return path


def _write_onnx(wrapper: RawInputModel, path: Path, *, image_size: int, in_channels: int,
                entries: dict[str, str]) -> Path:
    import onnx

    example = torch.randint(0, 256, (2, image_size, image_size, in_channels), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notices about opset conversions
        torch.onnx.export(wrapper, (example,), str(path), input_names=["images"],
                          output_names=["logits", "probabilities"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True, verbose=False)
    exported = onnx.load(str(path))
    for key, value in entries.items():
        onnx.helper.set_model_props(exported, {**{p.key: p.value for p in exported.metadata_props}, key: value})
    onnx.save(exported, str(path))
    return path


def run_raw_input(path: str | os.PathLike, images: np.ndarray) -> np.ndarray:
    """The probabilities (N, num_classes) of the raw-input export at `path` (.onnx in onnxruntime,
    .xml in OpenVINO fp32) for uint8 `images` (N, H, W, C)."""
    if Path(path).suffix == ".xml":
        from xception.deploy.runtimes import openvino_core

        compiled = openvino_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled(images)[compiled.output("probabilities")])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["probabilities"], {"images": images})[0])


def verify_raw_input(model: nn.Module, description: WeightsDescription, path: str | os.PathLike, *, image_size: int,
                     seed: int = 1) -> float:
    """The largest absolute difference between the export's probabilities on random uint8 images and
    PyTorch's on the same images prepared as the weights were (x / 127.5 - 1), through the
    temperature of their decision policy."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (2, image_size, image_size, description.in_channels), dtype=torch.uint8,
                           generator=generator)
    with torch.no_grad():
        logits = model.eval()(images.permute(0, 3, 1, 2).float() / 127.5 - 1)
    logits = calibrated_logits(logits, description.decision)
    expected = logits.sigmoid() if description.multilabel else logits.softmax(dim=1)
    return float(np.abs(run_raw_input(path, images.numpy()) - expected.double().numpy()).max())
