"""Class activation maps as PNG pictures, one image at a time, for a server's page
(`xception serve`'s `/predict?heatmap=true`)."""

from __future__ import annotations

import io
import threading

import torch
from torch import nn

from xception.explain.methods import Method, explain
from xception.explain.overlay import overlay


class HeatmapPNG:
    """(the model input (C, H, W) in [-1, 1], a class index) -> PNG bytes of `method`'s map of that
    class at the default layer over the image. One call at a time: explaining switches the
    model's gradients on and off, which concurrent requests must not interleave."""

    def __init__(self, model: nn.Module, *, method: Method = "gradcam") -> None:
        self.model, self.method = model, method
        self.lock = threading.Lock()

    def __call__(self, image: torch.Tensor, class_index: int) -> bytes:
        with self.lock:
            maps = explain(self.model, image[None], [class_index], method=self.method).maps
        out = io.BytesIO()
        overlay(image, maps[0]).save(out, format="PNG")
        return out.getvalue()
