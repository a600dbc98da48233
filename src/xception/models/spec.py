"""`ModelSpec`: what a model is, as one value: its registered name, its complete config, its classes
and input channels.

`create_model` resolves it (`xception.models.registry.resolve_spec`) and hands it to the model's
constructor, so every model built by name knows what it is from birth (`model_spec(model)`); the
weight file records it and opening the file rebuilds it whole (`registry.recorded_spec`): the
complete config, dict and `BlockSpec` fields included, not a difference from today's registry
default. (A leaf beside the model classes, which import it for their signatures.)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A registered model (`name`), its resolved config (a frozen dataclass), classes and channels.
    `num_classes` 0 is a body without its logistic layer."""

    name: str
    config: Any
    num_classes: int
    in_channels: int

    def config_plain(self) -> dict[str, Any]:
        """The config as JSON values (what a weight file records under "config")."""
        return json.loads(json.dumps(dataclasses.asdict(self.config)))


def model_spec(model: nn.Module) -> ModelSpec | None:
    """What `model` is now (a `reset_classifier` changes its classes), or None for a network that
    was constructed directly rather than by `create_model` (it has no registered name)."""
    name = getattr(model, "model_name", None)
    if name is None:
        return None
    return ModelSpec(name, model.config, model.num_classes, model.in_channels)
