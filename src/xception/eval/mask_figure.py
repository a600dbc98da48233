"""A picture of predicted segmentation masks: each input beside its true and predicted masks."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch


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
    predictions: int64 (N, H, W) class indices, class 0 drawn black.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colors = ["black", *plt.get_cmap("tab10").colors][: len(class_names)]
    palette = ListedColormap(colors)
    rows = len(images)
    figure, axes = plt.subplots(rows, 3, figsize=(6.6, 2.2 * rows + 0.9), squeeze=False)
    for row in range(rows):
        panels = (
            (images[row, 0].float().cpu(), dict(cmap="gray", vmin=-1, vmax=1), "input"),
            (truths[row].cpu(), dict(cmap=palette, vmin=0, vmax=len(colors) - 1, interpolation="nearest"), "true mask"),
            (predictions[row].cpu(), dict(cmap=palette, vmin=0, vmax=len(colors) - 1, interpolation="nearest"), "predicted"),
        )
        for axis, (picture, style, name) in zip(axes[row], panels, strict=True):
            axis.imshow(picture.numpy(), **style)
            axis.set_xticks([]), axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=9)
    handles = [Patch(color=c, label=n) for c, n in zip(colors, class_names, strict=True)]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0.9 / (2.2 * rows + 0.9), 1, 0.97))
    figure.savefig(path, dpi=110)
    plt.close(figure)
