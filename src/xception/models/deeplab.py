"""DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation", ECCV 2018) on any registered backbone.

Encoder: the backbone at `output_stride` 16 or 8 (atrous convolution past it, see
`xception.models.xception.atrous_placements`), then atrous spatial pyramid pooling on its last
feature map: a 1x1 convolution, three 3x3 atrous separable convolutions (rates 6/12/18 at stride
16, 12/24/36 at stride 8, as DeepLab trains and evaluates) and image pooling, concatenated and
projected to 256 channels. Decoder (section 3.1): the stride-4 features reduced to 48 channels, the
encoder's output upsampled to them, two 3x3 separable convolutions, a 1x1 classifier, and a
bilinear upsampling to the input's size. Every separable convolution has BatchNorm and ReLU after
its depthwise and after its pointwise part, as DeepLab's `split_separable_conv2d`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.nn import functional as F

from xception.errors import UnknownFieldError
from xception.models.layers import SeparableConv2d

if TYPE_CHECKING:
    from xception.models.spec import ModelSpec

# DeepLab's atrous rates for its two output strides (its train and eval scripts, section 4).
DEEPLAB_RATES: dict[int, tuple[int, int, int]] = {16: (6, 12, 18), 8: (12, 24, 36)}


@dataclass(frozen=True)
class DeepLabV3PlusConfig:
    """A DeepLabV3+ network. `atrous_rates=None` takes DeepLab's for the output stride."""

    backbone: str = "xception65"
    output_stride: Literal[8, 16] = 16
    atrous_rates: tuple[int, ...] | None = None
    aspp_channels: int = 256
    low_level_channels: int = 48
    decoder_channels: int = 256
    aspp_dropout: float = 0.1  # DeepLab's dropout on the projected ASPP output (keep 0.9)

    def rates(self) -> tuple[int, ...]:
        if self.atrous_rates is not None:
            return self.atrous_rates
        return DEEPLAB_RATES[self.output_stride]


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.ReLU(inplace=True),
        )
    )


class SeparableConvBnReLU(nn.Module):
    """DeepLab's separable 3x3 convolution: depthwise (dilated), BN, ReLU, pointwise, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int = 1) -> None:
        super().__init__()
        self.sepconv = SeparableConv2d(
            in_channels, out_channels, dilation=dilation, mid_activation="relu", mid_bn=nn.BatchNorm2d(in_channels)
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.sepconv(x)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: (N, in_channels, h, w) -> (N, channels, h, w)."""

    def __init__(self, in_channels: int, channels: int, rates: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.branch1x1 = _conv_bn_relu(in_channels, channels)
        self.atrous = nn.ModuleList(SeparableConvBnReLU(in_channels, channels, dilation=r) for r in rates)
        self.image_pool = _conv_bn_relu(in_channels, channels)  # on the globally averaged features
        self.project = _conv_bn_relu(channels * (len(rates) + 2), channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])
        branches = [self.branch1x1(x), *(branch(x) for branch in self.atrous), pooled]
        return self.drop(self.project(torch.cat(branches, dim=1)))


class DeepLabV3Plus(nn.Module):
    """Images (N, in_channels, H, W) -> per-pixel logits (N, num_classes, H, W).

    The backbone is `create_backbone(config.backbone, features_only=True, output_stride=...)` (the
    factory's `create_model`, which passes itself): its
    stride-4 feature map (the last one at reduction 4 in its `feature_info`) feeds the decoder,
    its last one the ASPP.
    """

    def __init__(
        self,
        config: DeepLabV3PlusConfig,
        *,
        num_classes: int,
        in_channels: int,
        drop_rate: float,
        create_backbone: Callable[..., nn.Module],
        spec: ModelSpec | None = None,
    ) -> None:
        super().__init__()
        # The registered name `create_model` built it as; None when constructed directly.
        self.model_name = spec.name if spec is not None else None
        if num_classes < 1:
            raise ValueError(f"a segmentation model needs num_classes >= 1; got {num_classes}")
        try:
            probe = create_backbone(config.backbone, num_classes=0, in_channels=in_channels,
                                    output_stride=config.output_stride)
        except UnknownFieldError as error:  # the backbone's config has no output_stride field
            raise ValueError(
                f"backbone {config.backbone!r} has no output_stride; DeepLabV3+ needs an Xception backbone"
            ) from error
        reductions = [info["reduction"] for info in probe.feature_info]
        if 4 not in reductions:
            raise ValueError(f"backbone {config.backbone!r} has no stride-4 feature map (reductions {reductions})")
        low_level = len(reductions) - 1 - reductions[::-1].index(4)
        del probe
        self.config = config
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.backbone = create_backbone(
            config.backbone,
            in_channels=in_channels,
            features_only=True,
            out_indices=(low_level, -1),
            output_stride=config.output_stride,
        )
        low_channels, high_channels = self.backbone.feature_info.channels()
        self.aspp = ASPP(high_channels, config.aspp_channels, config.rates(), config.aspp_dropout)
        self.reduce = _conv_bn_relu(low_channels, config.low_level_channels)
        self.decoder = nn.Sequential(
            SeparableConvBnReLU(config.aspp_channels + config.low_level_channels, config.decoder_channels),
            SeparableConvBnReLU(config.decoder_channels, config.decoder_channels),
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(config.decoder_channels, num_classes, 1)

    @property
    def min_input_size(self) -> int:
        return self.backbone.model.min_input_size

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)  # (N, C4, H/4, W/4), (N, C, H/os, W/os)
        encoded = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        decoded = self.decoder(torch.cat([encoded, self.reduce(low)], dim=1))
        logits = self.classifier(self.head_drop(decoded))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
