"""The registered models: a name, a builder and a frozen config each. Variants are data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from xception.config_fields import from_plain, with_overrides
from xception.errors import UnknownNameError
from xception.models.deeplab import DeepLabV3Plus, DeepLabV3PlusConfig
from xception.models.inception_v3 import InceptionV3, InceptionV3Config
from xception.models.spec import ModelSpec
from xception.models.xception import BlockSpec, Xception, XceptionConfig

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
    task: Literal["classification", "segmentation"] = "classification"

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

# DeepLab's aligned Xception (Chen et al. 2018, section 3.2; timm's xception_aligned.py): every
# module has three separable convolutions, the max pools become stride-2 separable convolutions,
# BatchNorm follows each depthwise convolution, the stem pads, and the middle flow is deeper.
_ALIGNED_BLOCK = BlockSpec((728, 728, 728))
_ALIGNED_EXIT = (
    BlockSpec((728, 1024, 1024), stride=2),
    BlockSpec((1536, 1536, 2048), first_activation=False, residual=False, end_activation=True, sepconv_activation=True),
)
_ALIGNED_41 = dataclasses.replace(
    _PAPER,
    entry_flow=(BlockSpec((128,) * 3, stride=2), BlockSpec((256,) * 3, stride=2), BlockSpec((728,) * 3, stride=2)),
    middle_flow=_ALIGNED_BLOCK,
    exit_flow=_ALIGNED_EXIT,
    stem_padding="fixed",
    depthwise_bn=True,
    bn_momentum=0.1,  # NOTE(paper): timm's (the DeepLab checkpoints were trained with TF's 0.9997)
)
_ALIGNED_65 = dataclasses.replace(_ALIGNED_41, middle_repeats=16)
# Xception-71 splits each of the last two entry modules into a stride-1 and a stride-2 one.
_ALIGNED_71 = dataclasses.replace(
    _ALIGNED_65,
    entry_flow=(
        BlockSpec((128,) * 3, stride=2),
        BlockSpec((256,) * 3),
        BlockSpec((256,) * 3, stride=2),
        BlockSpec((728,) * 3),
        BlockSpec((728,) * 3, stride=2),
    ),
)
# Pre-activation (timm's ra3 models): BatchNorm and ReLU before each separable convolution, the
# last block ends with a ReLU on its convolution (no BatchNorm); timm's 41p keeps PyTorch's epsilon.
_PREACT = dict(preact=True, depthwise_bn=False)
_PREACT_EXIT = (_ALIGNED_EXIT[0], BlockSpec((1536, 1536, 2048), residual=False, end_activation=True))
_ALIGNED_41P = dataclasses.replace(_ALIGNED_41, exit_flow=_PREACT_EXIT, bn_eps=1e-5, **_PREACT)
_ALIGNED_65P = dataclasses.replace(_ALIGNED_65, exit_flow=_PREACT_EXIT, **_PREACT)

# DeepLabV3+ for Fashion-MNIST mosaics (56 px, 2x2 tiles) on a CPU: xception_small at output
# stride 8 gives a 7x7 map, so the rates scale down with it (DeepLab's 12/24/36 are for 65x65
# maps at 513 px: past the map's edge a 3x3 atrous kernel only sees its centre), and 64 channels.
_DEEPLAB_SMALL = DeepLabV3PlusConfig(
    backbone="xception_small",
    output_stride=8,
    atrous_rates=(2, 4, 6),
    aspp_channels=64,
    low_level_channels=24,
    decoder_channels=64,
)

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
    ModelEntry("xception41", Xception, _ALIGNED_41, 299, "DeepLab's aligned Xception-41 (timm's weights load)"),
    ModelEntry("xception65", Xception, _ALIGNED_65, 299, "DeepLab's aligned Xception-65: 16 middle modules"),
    ModelEntry("xception71", Xception, _ALIGNED_71, 299, "DeepLab's aligned Xception-71: 5 entry modules"),
    ModelEntry("xception41p", Xception, _ALIGNED_41P, 299, "Aligned Xception-41, pre-activation (timm's ra3)"),
    ModelEntry("xception65p", Xception, _ALIGNED_65P, 299, "Aligned Xception-65, pre-activation (timm's ra3)"),
    ModelEntry(
        "deeplabv3plus",
        DeepLabV3Plus,
        DeepLabV3PlusConfig(),
        513,
        "DeepLabV3+ on xception65 at output stride 16 (ASPP 6/12/18)",
        task="segmentation",
    ),
    ModelEntry(
        "deeplabv3plus_small",
        DeepLabV3Plus,
        _DEEPLAB_SMALL,
        56,
        "DeepLabV3+ on xception_small, output stride 8, for Fashion-MNIST mosaics",
        task="segmentation",
    ),
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
    return with_overrides(get_entry(name).config, overrides, what=f"model {name!r}", where="model.")


def resolve_spec(name: str, *, num_classes: int, in_channels: int, **overrides: Any) -> ModelSpec:
    """The registered model `name` with `overrides` applied to its config (see `resolve_config`)."""
    return ModelSpec(name, resolve_config(name, **overrides), num_classes, in_channels)


def recorded_spec(metadata: dict[str, Any]) -> ModelSpec:
    """The spec a weight file recorded (model_name, config as JSON, num_classes, in_channels). Fields
    the file does not record (written before they existed) take the registered model's values;
    fields the registry no longer has are dropped."""
    name = metadata["model_name"]
    base = get_entry(name).config
    config = from_plain(type(base), {**dataclasses.asdict(base), **(metadata.get("config") or {})})
    return ModelSpec(name, config, int(metadata["num_classes"]), int(metadata.get("in_channels") or 3))


def spec_overrides(spec: ModelSpec) -> dict[str, Any]:
    """The fields of `spec`'s config that differ from its registered model's (`create_model`'s overrides)."""
    base = get_entry(spec.name).config
    return {field.name: getattr(spec.config, field.name) for field in dataclasses.fields(base)
            if getattr(spec.config, field.name) != getattr(base, field.name)}
