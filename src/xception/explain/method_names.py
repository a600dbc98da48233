"""The class activation map methods by name: what `xception explain --method` and `xception predict
--explain` offer. Kept apart from `methods` (torch, numpy, pytorch-grad-cam) because the command
line's parser reads it."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["gradcam", "cam", "gradcam++", "scorecam"]
METHODS: tuple[str, ...] = get_args(Method)
