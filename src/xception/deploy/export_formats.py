"""The export formats by name: what `xception export --format` offers. Kept apart from `export`
(torch, the exporters) because the command line's parser reads it."""

from __future__ import annotations

from typing import Literal

ExportFormat = Literal["onnx", "openvino", "torchscript", "torch_export"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("onnx", "openvino", "torchscript", "torch_export")
