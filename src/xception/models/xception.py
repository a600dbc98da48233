"""Xception (Chollet, CVPR 2017, Figure 5), exactly as the author's Keras Applications code builds it.

The architecture is data: `XceptionConfig` holds the entry, middle and exit flows as tuples of
`BlockSpec`, and the paper's ablations (residual connections, an activation between depthwise and
pointwise, the number of channel segments, fully-connected layers in the head) are fields of it.
Numerics follow Keras, so that the official weights load exactly: BatchNorm epsilon 1e-3 and
TensorFlow "same" padding, including the asymmetric stride-2 pools (see `SamePadMaxPool2d`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from xception.models.head import ClassifierNetwork
from xception.models.layers import MidActivation, Order, SamePadMaxPool2d, SeparableConv2d, scale_channels


@dataclass(frozen=True)
class BlockSpec:
    """One module of Figure 5: separable convolutions, each followed by BatchNorm.

    Every separable convolution after the first is preceded by a ReLU; the first one is preceded
    by a ReLU only when `first_activation` (block2 and block14 start right after an activation).
    `pool` ends the main path with a 3x3 stride-2 max pool (and makes the shortcut a strided 1x1
    convolution); `end_activation` adds the ReLU after the last BatchNorm (block14 only).
    """

    channels: tuple[int, ...]
    first_activation: bool = True
    pool: bool = False
    residual: bool = True
    end_activation: bool = False


@dataclass(frozen=True)
class XceptionConfig:
    """Everything that defines an Xception network. Variants are `dataclasses.replace` of this."""

    stem_channels: tuple[int, int] = (32, 64)
    entry_flow: tuple[BlockSpec, ...] = (
        BlockSpec((128, 128), first_activation=False, pool=True),  # block2: the stem's ReLU precedes it
        BlockSpec((256, 256), pool=True),  # block3
        BlockSpec((728, 728), pool=True),  # block4
    )
    middle_flow: BlockSpec = BlockSpec((728, 728, 728))  # blocks 5..12
    middle_repeats: int = 8
    exit_flow: tuple[BlockSpec, ...] = (
        BlockSpec((728, 1024), pool=True),  # block13
        BlockSpec((1536, 2048), first_activation=False, residual=False, end_activation=True),  # block14
    )
    # The paper's ablations and the spectrum (sections 1.2, 4.7, 4.8, 5).
    residual: bool = True
    mid_activation: MidActivation = None
    segments: int | None = None  # None: depthwise (one segment per channel)
    order: Order = "depthwise_first"
    fc_layers: tuple[int, ...] = ()  # the JFT experiments' head used (4096, 4096)
    # Scaling for small images and CPUs: channels x width (rounded to a multiple of 8).
    width: float = 1.0
    stem_stride: int = 2  # NOTE(paper): 1 is our addition, for 28-64 px images
    # Keras BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (PyTorch momentum 0.01).
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    def scale(self, channels: int) -> int:
        """Channels after the width multiplier: a multiple of 8 so every segment count 1-8 divides it."""
        return scale_channels(channels, self.width)

    def blocks(self) -> list[BlockSpec]:
        """The 13 modules after the stem in order (block2 .. block14 at the paper's depth)."""
        return [*self.entry_flow, *([self.middle_flow] * self.middle_repeats), *self.exit_flow]


def _bn(channels: int, config: XceptionConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=config.bn_eps, momentum=config.bn_momentum)


class Stem(nn.Module):
    """block1: two regular 3x3 convolutions with "valid" padding, each with BatchNorm and ReLU.

    (N, in_channels, 299, 299) -> (N, 64, 147, 147) at the paper's configuration.
    """

    def __init__(self, in_channels: int, config: XceptionConfig) -> None:
        super().__init__()
        c1, c2 = (config.scale(c) for c in config.stem_channels)
        self.conv1 = nn.Conv2d(in_channels, c1, 3, stride=config.stem_stride, bias=False)
        self.bn1 = _bn(c1, config)
        # In place: a ReLU that reads a BatchNorm output changes nothing a backward pass needs
        # (BatchNorm saves its input), and saves one activation map per ReLU (~8% per training
        # step here, see runtime.py). Module names and state_dict keys are unchanged.
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c1, c2, 3, bias=False)
        self.bn2 = _bn(c2, config)
        self.act2 = nn.ReLU(inplace=True)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(x)))


class XceptionBlock(nn.Module):
    """One module of Figure 5 (`BlockSpec`), with its residual connection when it has one.

    Module names follow Keras: `sepconv{m}` / `bn{m}` are `block{n}_sepconv{m}` / `..._bn`.
    The shortcut is the identity when shapes match, else a strided 1x1 convolution and BatchNorm,
    taken from the block's input before any activation.
    """

    def __init__(self, in_channels: int, spec: BlockSpec, config: XceptionConfig) -> None:
        super().__init__()
        channels = [config.scale(c) for c in spec.channels]
        units: OrderedDict[str, nn.Module] = OrderedDict()
        previous = in_channels
        for m, out in enumerate(channels, start=1):
            if m > 1 or spec.first_activation:
                # The first ReLU reads the block input, which the shortcut reads too: not in place.
                # The others read a BatchNorm output: in place is safe (see Stem).
                units[f"act{m}"] = nn.ReLU(inplace=m > 1)
            units[f"sepconv{m}"] = SeparableConv2d(
                previous,
                out,
                segments=config.segments,
                order=config.order,
                mid_activation=config.mid_activation,
            )
            units[f"bn{m}"] = _bn(out, config)
            previous = out
        if spec.end_activation:
            units[f"act{len(channels) + 1}"] = nn.ReLU(inplace=True)
        if spec.pool:
            units["pool"] = SamePadMaxPool2d(3, 2)
        self.main = nn.Sequential(units)
        self.out_channels = previous
        self.residual = spec.residual and config.residual
        self.shortcut: nn.Module | None = None
        if self.residual and (spec.pool or in_channels != previous):
            stride = 2 if spec.pool else 1
            self.shortcut = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, previous, 1, stride=stride, bias=False),
                    bn=_bn(previous, config),
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.main(x)
        if not self.residual:
            return out
        return out + (x if self.shortcut is None else self.shortcut(x))


class Xception(ClassifierNetwork):
    """Xception: stem, entry flow, middle flow, exit flow, then the head.

    Head (`ClassifierNetwork`): global average pooling -> optional fully-connected layers with
    ReLU -> dropout -> logistic layer (`classifier`), whose logits feed a softmax (ImageNet) or
    per-class sigmoids (the JFT multi-label task). `num_classes=0` drops the logistic layer.

    Input: (N, in_channels, H, W) float images, in [-1, 1] for the Keras weights.
    Output: (N, num_classes) logits.
    """

    def __init__(
        self,
        config: XceptionConfig,
        *,
        num_classes: int,
        in_channels: int,
        drop_rate: float,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate)
        self.config = config

        self.stem = Stem(in_channels, config)  # (N, 64, 147, 147) at 299 px
        channels, reduction = self.stem.out_channels, config.stem_stride
        by_stride = {reduction: dict(num_chs=channels, reduction=reduction, module="stem")}
        flows = (
            ("entry_flow", config.entry_flow),  # -> (N, 728, 19, 19) at 299 px
            ("middle_flow", (config.middle_flow,) * config.middle_repeats),  # -> (N, 728, 19, 19)
            ("exit_flow", config.exit_flow),  # -> (N, 2048, 10, 10)
        )
        n = 1  # Keras numbers the stem block1
        for flow_name, specs in flows:
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for spec in specs:
                n += 1
                blocks[f"block{n}"] = block = XceptionBlock(channels, spec, config)
                channels = block.out_channels
                reduction *= 2 if spec.pool else 1
                by_stride[reduction] = dict(num_chs=channels, reduction=reduction, module=f"{flow_name}.block{n}")
            setattr(self, flow_name, nn.Sequential(blocks))
        # The last feature map at each stride, for use as a backbone (strides 2 .. 32 at stem_stride 2).
        self.feature_info: list[dict] = list(by_stride.values())
        self.build_head(channels, fc_layers=config.fc_layers)

    @property
    def min_input_size(self) -> int:
        """The smallest height and width the stem's two "valid" convolutions admit."""
        return 2 * self.config.stem_stride + 3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_features, ceil(H / 32) - ish, ...) before pooling."""
        self.check_input(x)
        x = self.stem(x)
        x = self.entry_flow(x)
        x = self.middle_flow(x)
        return self.exit_flow(x)

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps listed in `feature_info` (strides 2, 4, 8, 16, 32 at stem_stride 2)."""
        self.check_input(x)
        wanted = {info["module"] for info in self.feature_info}
        features = []
        x = self.stem(x)
        if "stem" in wanted:
            features.append(x)
        for flow_name in ("entry_flow", "middle_flow", "exit_flow"):
            for name, block in getattr(self, flow_name).named_children():
                x = block(x)
                if f"{flow_name}.{name}" in wanted:
                    features.append(x)
        return features
