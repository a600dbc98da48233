"""The int8 quantization methods by name, the runtime and file of each, the order they are tried in,
and how many images they calibrate on by default. Kept apart from `quantize` and `calibration`
(torch, NNCF, torchao) because the command line's parser reads it."""

from __future__ import annotations

from typing import Literal

QuantizeMethod = Literal["nncf", "pt2e", "onnxruntime"]
QUANTIZE_METHODS: tuple[QuantizeMethod, ...] = ("nncf", "pt2e", "onnxruntime")
# The runtime that runs each method's int8 model, and the file it is saved as.
METHOD_RUNTIMES = {"nncf": "openvino", "pt2e": "torch", "onnxruntime": "onnxruntime"}
QUANTIZED_FILES = {"nncf": "int8_nncf.xml", "pt2e": "int8_pt2e.pt2", "onnxruntime": "int8_onnxruntime.onnx"}
# The int8 methods fastest first, as benchmarks/deploy.py measured them at 299 px, batch 16, on this
# project's 2-core AMD EPYC (BENCHMARKS.md): the order `--precision int8` tries without a --runtime,
# and the first is `xception quantize`'s default.
INT8_PREFERENCE: tuple[QuantizeMethod, ...] = ("onnxruntime", "pt2e", "nncf")
DEFAULT_METHOD: QuantizeMethod = INT8_PREFERENCE[0]

DEFAULT_CALIBRATION_SIZE = 300  # a few hundred: NNCF's own default subset is 300
