"""Which layer an explanation reads: the feature maps a model lists in its `feature_info`, by name.

A classifier (Xception and its ablations, the aligned family, Inception V3, the *_small models) lists
one map per stride, the last being the one global pooling averages (Keras' `block14_sepconv2_act`
for the paper's Xception, here `exit_flow.block14`; `Mixed_7c` for Inception V3). A segmentation
model (DeepLabV3+) explains through its backbone: the backbone's maps, under the same names, the last
being the input of the ASPP. That last map is the default: it has the most class-specific
channels and still keeps a coarse layout (Selvaraju et al., 2017, section 3).
"""

from __future__ import annotations

from torch import nn

from xception.errors import UnknownNameError
from xception.models.features import FeatureExtractor


def feature_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{name in feature_info: the module whose output is that map}, from the finest map to the
    last one (the default). TypeError for a model with no `feature_info`."""
    trunk = backbone_of(model)
    return {info["module"]: trunk.get_submodule(info["module"]) for info in trunk.feature_info}


def default_layer(model: nn.Module) -> str:
    """The name of the last feature map before global pooling (segmentation: before the ASPP)."""
    return backbone_of(model).feature_info[-1]["module"]


def resolve_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """(name, module) of the feature map `name` (None: the default); an unknown name fails with
    the model's valid names listed."""
    layers = feature_layers(model)
    name = default_layer(model) if name is None else name
    if name not in layers:
        raise UnknownNameError(f"unknown layer {name!r} for this model; valid (feature_info, the last is the "
                               f"default): {', '.join(layers)}")
    return name, layers[name]


def is_segmentation(model: nn.Module) -> bool:
    """Whether `model` labels pixels (logits (N, classes, H, W)): DeepLabV3+ on a feature backbone."""
    return isinstance(getattr(model, "backbone", None), FeatureExtractor)


def backbone_of(model: nn.Module) -> nn.Module:
    """The network whose `feature_info` names the layers: the model itself, or a segmentation
    model's backbone (its whole trunk, every map listed, not only the two the decoder reads)."""
    if is_segmentation(model):
        return model.backbone.model
    if not hasattr(model, "feature_info"):
        raise TypeError(f"{type(model).__name__} lists no feature_info; explanations need a registered model")
    return model
