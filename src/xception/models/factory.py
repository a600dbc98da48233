"""`create_model`: the one way to build any registered model, optionally with weights."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from xception.models.features import FeatureExtractor
from xception.models.registry import get_entry, resolve_spec
from xception.models.weights import load_weights
from xception.models.weights.download import fetch_weights, registered_weights
from xception.models.weights.hub import hub_weights_file, is_hub_id
from xception.models.weights.registry import WeightsEntry


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.0,
    weights: str | os.PathLike | WeightsEntry | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model `name` (see `list_models()`).

    `overrides` replace fields of the model's config, e.g. ``segments=4``, ``width=0.5``,
    ``residual=False``. `weights` is a file in any format `xception.models.weights` reads (the
    official Keras .h5 files, Keras 3 .weights.h5, timm/Cadene or torchvision state dicts, this
    project's safetensors); the head is kept when its shape fits `num_classes`. It may also name
    published weights of the model (`"imagenet"`, `"imagenet_notop"`, see `list_weights()`) or be a
    `WeightsEntry`: the file is downloaded into the cache on first use and checked (docs/weights.md);
    or a Hugging Face Hub id, ``"hf-hub:ORG/NAME[@REVISION]"``, fetched through huggingface_hub's cache;
    with another `num_classes` than theirs, their body is loaded under a fresh head (fine-tuning).
    The paper's dropout (0.5) belongs to the training recipe, so the default here is 0.

    ``features_only=True`` returns a `FeatureExtractor` (timm's interface): the trunk without its
    head, whose forward gives the feature maps at `out_indices` (default: all) of the model's
    `feature_info`; `weights` are loaded into the whole model first.
    """
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects feature maps: pass features_only=True with it")
    entry = get_entry(name)
    spec = resolve_spec(name, num_classes=num_classes, in_channels=in_channels, **overrides)
    # A segmentation model builds its backbone by name through this factory, handed to it here
    # (its module importing the factory would close an import cycle through the registry).
    extra = {"create_backbone": create_model} if entry.task == "segmentation" else {}
    model = entry.build(spec.config, num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate,
                        spec=spec, **extra)
    if is_hub_id(weights):
        weights = hub_weights_file(weights)
    if weights is not None:
        published = registered_weights(name, weights)
        if published is None:
            load_weights(model, weights)
        else:
            fresh_head = num_classes not in (0, published.num_classes) and published.num_classes != 0
            load_weights(model, fetch_weights(published), fresh_head=fresh_head)
    if features_only:
        model.reset_classifier(0)
        model.fc_layers = nn.Sequential()  # no head tensors left unused by a backbone
        return FeatureExtractor(model, out_indices)
    return model
