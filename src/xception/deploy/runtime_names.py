"""The inference runtimes by name. Kept apart from `runtimes` (which imports torch) because the
command line's parser takes its --runtime choices from here."""

from __future__ import annotations

from typing import Literal, get_args

Runtime = Literal["torch", "onnxruntime", "openvino"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
