"""The model-randomisation sanity check of Adebayo et al. (2018), "Sanity checks for saliency maps":
a map that explains the model must change when the model's weights are replaced by random ones.
Measured as the Spearman rank correlation between each image's map from the trained weights and
from re-initialised ones (every layer, as in their full randomisation); an edge detector that ignores
the weights would keep a correlation near 1.
"""

from __future__ import annotations

import copy

import torch
from scipy.stats import spearmanr
from torch import nn

from xception.explain.methods import Method, explain


def reinitialised(model: nn.Module, *, seed: int) -> nn.Module:
    """A copy of `model` whose every parameter and BatchNorm statistic is re-drawn by its module's
    `reset_parameters` (PyTorch's default initialisation), with torch's generator seeded by `seed`."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return fresh.eval()


def randomisation_correlations(model: nn.Module, images: torch.Tensor, classes: torch.Tensor, *,
                               method: Method = "gradcam", layer: str | None = None, seed: int = 0) -> torch.Tensor:
    """float64 (N,): per image, the Spearman rank correlation of the map of `classes` from `model`
    and from `reinitialised(model, seed=seed)`, at the same layer. NaN where either map is flat (a
    random model often has no positive evidence for a class anywhere: its map is all zero, and a
    constant has no ranking to correlate)."""
    trained = explain(model, images, classes, method=method, layer=layer).maps
    random = explain(reinitialised(model, seed=seed), images, classes, method=method, layer=layer).maps
    return torch.tensor([_spearman(a.flatten().numpy(), b.flatten().numpy())
                         for a, b in zip(trained, random, strict=True)], dtype=torch.float64)


def _spearman(a, b) -> float:
    if a.min() == a.max() or b.min() == b.max():
        return float("nan")  # scipy would say the same, with a warning per map
    return float(spearmanr(a, b).statistic)
