"""The registered models: a name, a builder and a frozen config each. Variants are data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from xception.config_fields import check_field_types
from xception.errors import UnknownFieldError, UnknownNameError
from xception.models.inception_v3 import InceptionV3, InceptionV3Config
from xception.models.xception import Xception, XceptionConfig

# The paper's two kinds of network; recipes (weight decay) and experiments (arms) differ by family.
Family = Literal["xception", "inception_v3"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: `build(config, num_classes=, in_channels=, drop_rate=)` makes it."""

    name: str
    build: Callable[..., nn.Module]
    config: Any  # a frozen dataclass; create_model's overrides replace its fields
    input_size: int  # the default (and the paper's) square input size in pixels
    description: str

    @property
    def family(self) -> Family:
        """"inception_v3" for the Inception V3 baseline and its scalings, "xception" for every Xception."""
        return "inception_v3" if self.build is InceptionV3 else "xception"


_PAPER = XceptionConfig()
# A small Xception for 28-64 px images on a CPU: a quarter of the width, a third of the middle
# flow, and a stride-1 stem so that a 28 px image keeps a 2x2 map at the end (stride 16).
_SMALL = dataclasses.replace(_PAPER, width=0.25, middle_repeats=3, stem_stride=1, bn_momentum=0.1)
# The baseline for the same images: all eleven Inception modules at 0.19 width, a stride-1 stem and
# "same" padding (28 px -> 2x2 at stride 16), with xception_small's trainable parameter count
# within 5% (863,154 vs 837,410 at num_classes=10, in_channels=1).
_INCEPTION_SMALL = InceptionV3Config(width=0.19, stem_stride=1, padding="same", bn_momentum=0.1)

_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry("xception", Xception, _PAPER, 299, "Figure 5 and Keras Applications' Xception"),
    ModelEntry(
        "xception_no_residual",
        Xception,
        dataclasses.replace(_PAPER, residual=False),
        299,
        "Figure 9: Xception without any residual connections",
    ),
    ModelEntry(
        "xception_mid_relu",
        Xception,
        dataclasses.replace(_PAPER, mid_activation="relu"),
        299,
        "Figure 10: ReLU between depthwise and pointwise",
    ),
    ModelEntry(
        "xception_mid_elu",
        Xception,
        dataclasses.replace(_PAPER, mid_activation="elu"),
        299,
        "Figure 10: ELU between depthwise and pointwise",
    ),
    ModelEntry(
        "xception_fc",
        Xception,
        dataclasses.replace(_PAPER, fc_layers=(4096, 4096)),
        299,
        "Section 4.5: two 4096-unit fully-connected layers before the logistic layer (JFT)",
    ),
    ModelEntry("xception_small", Xception, _SMALL, 28, "Xception scaled for 28-64 px images on a CPU"),
    ModelEntry("inception_v3", InceptionV3, InceptionV3Config(), 299, "The paper's baseline: Inception V3, no auxiliary tower"),
    ModelEntry(
        "inception_v3_small", InceptionV3, _INCEPTION_SMALL, 28, "Inception V3 scaled like xception_small (28-64 px)"
    ),
)

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def list_models() -> list[str]:
    """The names `create_model` accepts, sorted."""
    return sorted(MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`, or a KeyError that lists the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; valid: {', '.join(list_models())}") from None


def model_family(name: str) -> Family:
    """The family of the registered model `name` (unknown names fail, listing the valid ones)."""
    return get_entry(name).family


def resolve_config(name: str, **overrides: Any) -> Any:
    """The entry's config with `overrides` applied; unknown fields fail with the valid ones listed."""
    config = get_entry(name).config
    valid = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise UnknownFieldError(f"unknown override(s) {unknown} for model {name!r}; valid: {', '.join(sorted(valid))}")
    check_field_types(type(config), overrides, where="model.")
    return dataclasses.replace(config, **overrides)
