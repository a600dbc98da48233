"""A map drawn over the image the model saw: the jet colour map (as in Keras' Grad-CAM example and
pytorch-grad-cam's `show_cam_on_image`) blended half and half with the image."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import torch
from PIL import Image

from xception.data.images import to_pil_image

COLORMAP = "jet"  # blue: no evidence, red: the map's maximum
MIN_SIDE = 224  # smaller inputs (the 28-56 px Fashion-MNIST models) are enlarged to be seen


def overlay(image: torch.Tensor, heatmap: torch.Tensor, *, alpha: float = 0.5) -> Image.Image:
    """An RGB picture of `heatmap` (H, W) in [0, 1] over `image` (C, H, W) in [-1, 1], the model's
    input (C = 1 or 3). Inputs under MIN_SIDE pixels are enlarged by a whole factor, nearest
    neighbour, so each input pixel stays a visible square."""
    if heatmap.shape != image.shape[-2:]:
        raise ValueError(f"the map is {tuple(heatmap.shape)} but the image {tuple(image.shape[-2:])}")
    picture = np.asarray(to_pil_image(image.detach().cpu()).convert("RGB"), dtype=np.float32) / 255
    colours = matplotlib.colormaps[COLORMAP](heatmap.detach().cpu().clamp(0, 1).numpy())[..., :3]
    blended = Image.fromarray(np.uint8(np.round(255 * ((1 - alpha) * picture + alpha * colours))))
    factor = math.ceil(MIN_SIDE / min(blended.size))
    if factor > 1:
        blended = blended.resize((blended.width * factor, blended.height * factor), Image.Resampling.NEAREST)
    return blended
