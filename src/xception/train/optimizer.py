"""The optimizer of a recipe, with weight decay on kernels only (as TF-slim's regularizers)."""

from __future__ import annotations

import torch
from torch import nn

from xception.models.registry import model_family
from xception.train.recipes import Recipe


def build_optimizer(model: nn.Module, *, recipe: Recipe, model_name: str, lr: float) -> torch.optim.Optimizer:
    """SGD or RMSprop over `model`'s parameters. Conv and dense kernels (ndim > 1) get the recipe's
    weight decay for the model's family; BatchNorm parameters and biases get none."""
    decay = recipe.weight_decay_for(model_family(model_name))
    kernels = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    others = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [dict(params=kernels, weight_decay=decay), dict(params=others, weight_decay=0.0)]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            groups, lr=lr, momentum=recipe.momentum, alpha=recipe.rmsprop_alpha, eps=recipe.rmsprop_eps
        )
    raise ValueError(f"recipe {recipe.name!r}: unknown optimizer {recipe.optimizer!r}; valid: sgd, rmsprop")
