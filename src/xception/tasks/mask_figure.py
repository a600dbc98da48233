"""Pictures of segmentation masks: each input beside its true and predicted masks, and one mask as a
palette PNG. Both draw class 0 (background) black and the others in matplotlib's tab10 colours."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from xception.data.config import IGNORE_INDEX


def mask_colors(count: int) -> list[tuple[float, float, float]]:
    """RGB in [0, 1] of classes 0..count-1: black, then tab10 (cycled past 11 classes)."""
    from matplotlib import colormaps

    tab10 = colormaps["tab10"].colors
    return [(0.0, 0.0, 0.0), *(tab10[i % len(tab10)] for i in range(count - 1))]


def save_mask_png(path: str | os.PathLike, mask: torch.Tensor, *, num_classes: int) -> None:
    """Write the (H, W) class indices `mask` as a palette PNG: each pixel's value is its class index
    (as PASCAL VOC's masks store them, readable with PIL as `np.asarray(Image.open(path))`) and
    viewers show the colours of `mask_colors`."""
    from PIL import Image

    if num_classes > 256:
        raise ValueError(f"a palette PNG holds at most 256 classes, not {num_classes}")
    picture = Image.fromarray(mask.to(torch.uint8).cpu().numpy())  # "L"; putpalette makes it "P"
    picture.putpalette([round(255 * c) for color in mask_colors(num_classes) for c in color])
    picture.save(path)


def save_mask_figure(
    path: str | os.PathLike,
    images: torch.Tensor,
    truths: torch.Tensor,
    predictions: torch.Tensor,
    *,
    class_names: Sequence[str],
    title: str,
) -> None:
    """Write a PNG with one row per image: input, true mask, predicted mask, and a class legend.

    images: (N, C, H, W) model inputs in [-1, 1] (the first channel is shown); truths,
    predictions: int64 (N, H, W) class indices, class 0 drawn black; the true masks' unlabelled
    pixels (`IGNORE_INDEX`, 255) are drawn white.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colors = mask_colors(len(class_names))
    palette = ListedColormap(colors)
    palette = palette.with_extremes(bad="white")
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(6.6, 2.2 * rows + 0.9), squeeze=False)
    for row in range(rows):
        panels = (
            (images[row, 0].float().cpu().numpy(), dict(cmap="gray", vmin=-1, vmax=1), "input"),
            (np.ma.masked_equal(truths[row].cpu().numpy(), IGNORE_INDEX),  # unlabelled: the "bad" colour
             dict(cmap=palette, vmin=0, vmax=len(colors) - 1, interpolation="nearest"), "true mask"),
            (predictions[row].cpu().numpy(), dict(cmap=palette, vmin=0, vmax=len(colors) - 1, interpolation="nearest"), "predicted"),
        )
        for axis, (picture, style, name) in zip(axes[row], panels, strict=True):
            axis.imshow(picture, **style)
            axis.set_xticks([]), axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=9)
    handles = [Patch(color=c, label=n) for c, n in zip(colors, class_names, strict=True)]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.9 / (2.2 * rows + 0.9), 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)
