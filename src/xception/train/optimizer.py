"""The optimizer of a recipe, with weight decay on kernels only (as TF-slim's regularizers)."""

from __future__ import annotations

import torch
from torch import nn

from xception.models.registry import model_family
from xception.train.recipes import Recipe


def build_optimizer(model: nn.Module, *, recipe: Recipe, model_name: str, lr: float,
                    trunk: set[nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """SGD, RMSprop or AdamW over `model`'s trainable parameters. Conv and dense kernels (ndim > 1)
    get the recipe's weight decay for the model's family; BatchNorm parameters and biases get none.
    Parameters in `trunk` (fine-tuning) go to groups marked "trunk", whose learning rate the trainer
    scales; parameters that never train (frozen BatchNorm) are left out, so they hold no state."""
    decay = recipe.weight_decay_for(model_family(model_name))
    trunk = trunk or set()
    groups = []
    for in_trunk in (False, True):
        params = [p for p in model.parameters() if p.requires_grad and (p in trunk) == in_trunk]
        for kernels, weight_decay in ((True, decay), (False, 0.0)):
            chosen = [p for p in params if (p.ndim > 1) == kernels]
            if chosen or not in_trunk:
                groups.append(dict(params=chosen, weight_decay=weight_decay, trunk=in_trunk))
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=recipe.adam_betas)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            groups, lr=lr, momentum=recipe.momentum, alpha=recipe.rmsprop_alpha, eps=recipe.rmsprop_eps
        )
    raise ValueError(f"recipe {recipe.name!r}: unknown optimizer {recipe.optimizer!r}; valid: sgd, rmsprop, adamw")
