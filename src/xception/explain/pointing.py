"""The pointing game (Zhang et al., 2016) on canvases: does a map's maximum fall in the cell that
holds the garment? A canvas (`xception.data.mosaic`, source "canvas") has one Fashion-MNIST item in
one of grid x grid cells and black elsewhere, so chance is 1 / grid**2 (25% on a 2x2 canvas).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xception.data.mosaic import MosaicImages
from xception.explain.methods import Method, explain


def peak_cells(maps: torch.Tensor, *, grid: int) -> torch.Tensor:
    """int64 (N,): the row-major cell (of a grid x grid split of each map) that holds the map's
    maximum, or -1 for a flat map (no maximum to point with). maps: (N, H, W), H and W divisible by grid."""
    count, height, width = maps.shape
    if height % grid or width % grid:
        raise ValueError(f"maps of {height}x{width} px do not split into a {grid}x{grid} grid")
    flat = maps.flatten(1)
    peak = flat.argmax(dim=1)
    cells = (peak // width) // (height // grid) * grid + (peak % width) // (width // grid)
    flat_maps = flat.max(dim=1).values == flat.min(dim=1).values
    return torch.where(flat_maps, -1, cells)


@dataclass(frozen=True)
class PointingResult:
    """hits of `count` canvases (the map of the true class peaks in the garment's cell), and how many
    of them the classifier got right (top-1)."""

    method: str
    layer: str
    count: int
    hits: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.hits / self.count


def pointing_game(model: nn.Module, canvases: MosaicImages, *, method: Method, layer: str | None = None,
                  count: int, batch_size: int = 50) -> PointingResult:
    """Play the pointing game on the first `count` canvases, explaining each canvas's true class."""
    if count > len(canvases):
        raise ValueError(f"asked for {count} canvases, there are {len(canvases)}")
    hits = correct = 0
    name = layer
    for start in range(0, count, batch_size):
        index = torch.arange(start, min(start + batch_size, count))
        images = canvases.pipeline(canvases.raw_images(index))
        labels = canvases.targets[index]
        explanation = explain(model, images, labels, method=method, layer=layer)
        hits += int((peak_cells(explanation.maps, grid=canvases.grid) == canvases.item_cells(index)).sum())
        correct += int((explanation.logits.argmax(dim=1) == labels).sum())
        name = explanation.layer
    return PointingResult(method=method, layer=name, count=count, hits=hits, correct=correct)
