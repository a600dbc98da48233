"""Inception V3 (Szegedy et al., CVPR 2016), the baseline of the Xception paper (sections 4.1-4.4).

The paper trains it without the auxiliary tower, so there is none here. The eleven Inception
modules are data: `InceptionV3Config.mixed` lists them by kind, and each kind is one class below.
Module names are torchvision's (`Conv2d_1a_3x3.conv`, `Mixed_5b.branch1x1.bn`, ...), so a
torchvision state dict maps one to one, except `fc` -> `classifier` and the dropped `AuxLogits`
(see `weights/torchvision_inception_v3.py`). Numerics are torchvision's by default: BatchNorm epsilon 1e-3 with
a learned scale (gamma), and a pool-branch average pool that counts its zero padding;
`pool_counts_padding=False` with every gamma at 1 is Keras' `InceptionV3` (and TF-slim's) exactly.

Input: (N, in_channels, 299, 299) for the paper; at least `min_input_size` pixels a side.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from xception.models.head import ClassifierNetwork
from xception.models.layers import scale_channels

if TYPE_CHECKING:
    from xception.models.spec import ModelSpec

MixedKind = Literal["A", "B", "C", "D", "E"]
Padding = Literal["valid", "same"]


@dataclass(frozen=True)
class MixedSpec:
    """One Inception module: its name (TF-slim's and torchvision's), its kind and its width knob.

    Kinds (figures of Szegedy et al. 2016): A, the 35x35 module of Figure 5; B, the 35 -> 17 grid
    reduction of Figure 10; C, the 17x17 module with factorized 7x7 convolutions of Figure 6;
    D, the 17 -> 8 grid reduction; E, the 8x8 module with expanded filter banks of Figure 7.
    `channels` is the pool branch's width for A and the 7x7 branches' inner width for C; B, D and
    E have none.
    """

    name: str
    kind: MixedKind
    channels: int = 0


@dataclass(frozen=True)
class InceptionV3Config:
    """Everything that defines an Inception V3 network. Variants are `dataclasses.replace` of this."""

    # Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3.
    stem_channels: tuple[int, int, int, int, int] = (32, 32, 64, 80, 192)
    mixed: tuple[MixedSpec, ...] = (
        MixedSpec("Mixed_5b", "A", 32),  # 35x35 at 299 px
        MixedSpec("Mixed_5c", "A", 64),
        MixedSpec("Mixed_5d", "A", 64),
        MixedSpec("Mixed_6a", "B"),  # -> 17x17
        MixedSpec("Mixed_6b", "C", 128),
        MixedSpec("Mixed_6c", "C", 160),
        MixedSpec("Mixed_6d", "C", 160),
        MixedSpec("Mixed_6e", "C", 192),
        MixedSpec("Mixed_7a", "D"),  # -> 8x8
        MixedSpec("Mixed_7b", "E"),
        MixedSpec("Mixed_7c", "E"),
    )
    fc_layers: tuple[int, ...] = ()  # the JFT experiments' head used (4096, 4096) (section 4.5)
    # Scaling for small images and CPUs: channels x width (rounded to a multiple of 8).
    width: float = 1.0
    # NOTE(paper): the three fields below are our additions, for 28-64 px images. stem_stride 1
    # keeps Conv2d_1a_3x3 at full resolution; stem_pool False drops maxpool1 and maxpool2;
    # padding "same" pads the 3x3 convolutions and pools the paper leaves unpadded ("valid"),
    # so every stride-2 step maps H to ceil(H / 2) and no step can shrink a map to nothing.
    stem_stride: int = 2
    stem_pool: bool = True
    padding: Padding = "valid"
    # The pool branch's average pool: torchvision divides border sums by 9, counting the zero
    # padding (True); TensorFlow's "same" pooling (TF-slim, Keras) divides by the real pixels (False).
    pool_counts_padding: bool = True
    # torchvision and TF-slim use BatchNorm epsilon 1e-3. Momentum 0.01 is Keras' 0.99 decay, the
    # same as XceptionConfig so the two models train alike (PyTorch's default is 0.1).
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01

    def scale(self, channels: int) -> int:
        """Channels after the width multiplier, rounded to a multiple of 8 (as XceptionConfig)."""
        return scale_channels(channels, self.width)

    @property
    def unpadded(self) -> int:
        """Padding of the 3x3 convolutions and pools that the paper leaves unpadded."""
        return 1 if self.padding == "same" else 0


class ConvBnReLU(nn.Module):
    """Convolution without bias, BatchNorm, ReLU: torchvision's `BasicConv2d`, every conv here.

    (N, in_channels, H, W) -> (N, out_channels, H', W') with the usual convolution arithmetic.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int | tuple[int, int],
        config: InceptionV3Config,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=config.bn_eps, momentum=config.bn_momentum)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _avg_pool(config: InceptionV3Config) -> nn.AvgPool2d:
    """The pool branch's 3x3 stride-1 average pool, shape-preserving (padding 1)."""
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=config.pool_counts_padding)


class InceptionA(nn.Module):
    """35x35 module (Figure 5 of Szegedy et al.): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1.

    The released network (TF-slim, Keras, torchvision) keeps a 5x5 branch beside the two stacked
    3x3 convolutions that Figure 5 draws; we follow the released network.
    (N, C, H, W) -> (N, 64 + 64 + 96 + pool_channels, H, W) at width 1.
    """

    def __init__(self, in_channels: int, spec: MixedSpec, config: InceptionV3Config) -> None:
        super().__init__()
        c = config.scale

        def conv(cin: int, cout: int, k: int, p: int = 0) -> ConvBnReLU:
            return ConvBnReLU(cin, cout, kernel_size=k, padding=p, config=config)

        self.branch1x1 = conv(in_channels, c(64), 1)
        self.branch5x5_1 = conv(in_channels, c(48), 1)
        self.branch5x5_2 = conv(c(48), c(64), 5, 2)
        self.branch3x3dbl_1 = conv(in_channels, c(64), 1)
        self.branch3x3dbl_2 = conv(c(64), c(96), 3, 1)
        self.branch3x3dbl_3 = conv(c(96), c(96), 3, 1)
        self.pool = _avg_pool(config)
        self.branch_pool = conv(in_channels, c(spec.channels), 1)
        self.out_channels = c(64) + c(64) + c(96) + c(spec.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(self.pool(x))], 1)


class InceptionB(nn.Module):
    """35 -> 17 grid reduction (Figure 10): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2, concatenated.

    (N, C, H, W) -> (N, 384 + 96 + C, (H - 3) // 2 + 1, ...) ("valid"; ceil(H / 2) with "same").
    """

    def __init__(self, in_channels: int, spec: MixedSpec, config: InceptionV3Config) -> None:
        super().__init__()
        c, p = config.scale, config.unpadded
        self.branch3x3 = ConvBnReLU(in_channels, c(384), kernel_size=3, stride=2, padding=p, config=config)
        self.branch3x3dbl_1 = ConvBnReLU(in_channels, c(64), kernel_size=1, config=config)
        self.branch3x3dbl_2 = ConvBnReLU(c(64), c(96), kernel_size=3, padding=1, config=config)
        self.branch3x3dbl_3 = ConvBnReLU(c(96), c(96), kernel_size=3, stride=2, padding=p, config=config)
        self.pool = nn.MaxPool2d(3, stride=2, padding=p)
        self.out_channels = c(384) + c(96) + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), branch3x3dbl, self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 module (Figure 6): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1.

    `spec.channels` is the inner width of the 7x7 branches. (N, C, H, W) -> (N, 768, H, W) at width 1.
    """

    def __init__(self, in_channels: int, spec: MixedSpec, config: InceptionV3Config) -> None:
        super().__init__()
        c = config.scale
        c7 = c(spec.channels)

        def conv(cin: int, cout: int, k: int | tuple[int, int], p: int | tuple[int, int] = 0) -> ConvBnReLU:
            return ConvBnReLU(cin, cout, kernel_size=k, padding=p, config=config)

        self.branch1x1 = conv(in_channels, c(192), 1)
        self.branch7x7_1 = conv(in_channels, c7, 1)
        self.branch7x7_2 = conv(c7, c7, (1, 7), (0, 3))
        self.branch7x7_3 = conv(c7, c(192), (7, 1), (3, 0))
        self.branch7x7dbl_1 = conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1), (3, 0))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7), (0, 3))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1), (3, 0))
        self.branch7x7dbl_5 = conv(c7, c(192), (1, 7), (0, 3))
        self.pool = _avg_pool(config)
        self.branch_pool = conv(in_channels, c(192), 1)
        self.out_channels = 4 * c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(self.pool(x))], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2, concatenated.

    (N, C, H, W) -> (N, 320 + 192 + C, (H - 3) // 2 + 1, ...) ("valid"; ceil(H / 2) with "same").
    """

    def __init__(self, in_channels: int, spec: MixedSpec, config: InceptionV3Config) -> None:
        super().__init__()
        c, p = config.scale, config.unpadded
        self.branch3x3_1 = ConvBnReLU(in_channels, c(192), kernel_size=1, config=config)
        self.branch3x3_2 = ConvBnReLU(c(192), c(320), kernel_size=3, stride=2, padding=p, config=config)
        self.branch7x7x3_1 = ConvBnReLU(in_channels, c(192), kernel_size=1, config=config)
        self.branch7x7x3_2 = ConvBnReLU(c(192), c(192), kernel_size=(1, 7), padding=(0, 3), config=config)
        self.branch7x7x3_3 = ConvBnReLU(c(192), c(192), kernel_size=(7, 1), padding=(3, 0), config=config)
        self.branch7x7x3_4 = ConvBnReLU(c(192), c(192), kernel_size=3, stride=2, padding=p, config=config)
        self.pool = nn.MaxPool2d(3, stride=2, padding=p)
        self.out_channels = c(320) + c(192) + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        return torch.cat([branch3x3, branch7x7x3, self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks (Figure 7): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) |
    avgpool-1x1. (N, C, H, W) -> (N, 320 + 768 + 768 + 192 = 2048, H, W) at width 1.
    """

    def __init__(self, in_channels: int, spec: MixedSpec, config: InceptionV3Config) -> None:
        super().__init__()
        c = config.scale

        def conv(cin: int, cout: int, k: int | tuple[int, int], p: int | tuple[int, int] = 0) -> ConvBnReLU:
            return ConvBnReLU(cin, cout, kernel_size=k, padding=p, config=config)

        self.branch1x1 = conv(in_channels, c(320), 1)
        self.branch3x3_1 = conv(in_channels, c(384), 1)
        self.branch3x3_2a = conv(c(384), c(384), (1, 3), (0, 1))
        self.branch3x3_2b = conv(c(384), c(384), (3, 1), (1, 0))
        self.branch3x3dbl_1 = conv(in_channels, c(448), 1)
        self.branch3x3dbl_2 = conv(c(448), c(384), 3, 1)
        self.branch3x3dbl_3a = conv(c(384), c(384), (1, 3), (0, 1))
        self.branch3x3dbl_3b = conv(c(384), c(384), (3, 1), (1, 0))
        self.pool = _avg_pool(config)
        self.branch_pool = conv(in_channels, c(192), 1)
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(self.pool(x))], 1)


GRID_REDUCTIONS = ("B", "D")  # the kinds that halve the map (stride 2)
_UNPADDED_STEM_CONVS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_4a_3x3")  # "valid" in the paper

MIXED_KINDS: dict[str, type[nn.Module]] = {
    "A": InceptionA,
    "B": InceptionB,
    "C": InceptionC,
    "D": InceptionD,
    "E": InceptionE,
}


class InceptionV3(ClassifierNetwork):
    """Inception V3 without the auxiliary tower: stem, eleven Inception modules, then the head.

    The head is Xception's (`ClassifierNetwork`): global average pooling -> optional fully-connected
    layers with ReLU -> dropout (`head_drop`) -> logistic layer (`classifier`). `num_classes=0`
    drops the logistic layer.

    Input: (N, in_channels, H, W) float images. Output: (N, num_classes) logits. At 299 px the
    maps are 147x147x64 (Conv2d_2b_3x3), 71x71x192 (Conv2d_4a_3x3), 35x35x288 (Mixed_5d),
    17x17x768 (Mixed_6e) and 8x8x2048 (Mixed_7c).
    """

    def __init__(
        self,
        config: InceptionV3Config,
        *,
        num_classes: int,
        in_channels: int,
        drop_rate: float,
        spec: ModelSpec | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate, spec=spec)
        if config.stem_stride not in (1, 2) or config.padding not in ("valid", "same"):
            raise ValueError(
                f"need stem_stride 1 or 2 and padding 'valid' or 'same'; got "
                f"stem_stride={config.stem_stride}, padding={config.padding!r}"
            )
        unknown = [spec.kind for spec in config.mixed if spec.kind not in MIXED_KINDS]
        if unknown:
            raise ValueError(f"unknown Inception module kind(s) {unknown}; valid: {', '.join(MIXED_KINDS)}")
        self.config = config

        c, p = config.scale, config.unpadded
        c1a, c2a, c2b, c3b, c4a = (c(channels) for channels in config.stem_channels)
        # (name, module, stride): the trunk in order; `forward_features` runs it top to bottom.
        # Every stride-2 step and the stem's three "valid" convolutions is a 3x3 window the paper
        # leaves unpadded, so a map of size H becomes (H + 2 * unpadded - 3) // stride + 1 there.
        trunk: list[tuple[str, nn.Module, int]] = [
            ("Conv2d_1a_3x3", ConvBnReLU(in_channels, c1a, kernel_size=3, stride=config.stem_stride,
                                         padding=p, config=config), config.stem_stride),
            ("Conv2d_2a_3x3", ConvBnReLU(c1a, c2a, kernel_size=3, padding=p, config=config), 1),
            ("Conv2d_2b_3x3", ConvBnReLU(c2a, c2b, kernel_size=3, padding=1, config=config), 1),
            ("maxpool1", nn.MaxPool2d(3, stride=2, padding=p), 2),
            ("Conv2d_3b_1x1", ConvBnReLU(c2b, c3b, kernel_size=1, config=config), 1),
            ("Conv2d_4a_3x3", ConvBnReLU(c3b, c4a, kernel_size=3, padding=p, config=config), 1),
            ("maxpool2", nn.MaxPool2d(3, stride=2, padding=p), 2),
        ]  # -> (N, 192, 35, 35) at 299 px
        if not config.stem_pool:
            trunk = [step for step in trunk if not step[0].startswith("maxpool")]
        channels = c4a
        for spec in config.mixed:
            module = MIXED_KINDS[spec.kind](channels, spec, config)
            trunk.append((spec.name, module, 2 if spec.kind in GRID_REDUCTIONS else 1))
            channels = module.out_channels
        # Sizes: 35x35 (Mixed_5*), 17x17 (Mixed_6*), 8x8 (Mixed_7*) at 299 px.

        by_stride: dict[int, dict] = {}
        reduction = 1
        for name, module, stride in trunk:
            self.add_module(name, module)
            reduction *= stride
            if not name.startswith("maxpool"):
                by_stride[reduction] = dict(num_chs=_out_channels(module), reduction=reduction, module=name)
        self.trunk_names: tuple[str, ...] = tuple(name for name, _, _ in trunk)
        self._unpadded_strides = [stride for name, _, stride in trunk if stride == 2 or name in _UNPADDED_STEM_CONVS]
        # The last feature map at each stride, for use as a backbone (strides 2 .. 32 at the paper's
        # config: Conv2d_2b_3x3, Conv2d_4a_3x3, Mixed_5d, Mixed_6e, Mixed_7c).
        self.feature_info: list[dict] = list(by_stride.values())
        self.build_head(channels, fc_layers=config.fc_layers)
        self._min_input_size = next(size for size in itertools.count(1) if self._admits(size))

    @property
    def min_input_size(self) -> int:
        """The smallest height and width for which no "valid" 3x3 step shrinks a map to nothing.

        75 px at the paper's configuration (as torchvision documents), 1 px with padding "same".
        """
        return self._min_input_size

    def _admits(self, size: int) -> bool:
        pad = self.config.unpadded
        for stride in self._unpadded_strides:
            if size + 2 * pad < 3:
                return False
            size = (size + 2 * pad - 3) // stride + 1
        return True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_features, h, w) before pooling (8x8 at 299 px)."""
        self.check_input(x)
        for name in self.trunk_names:
            x = getattr(self, name)(x)
        return x

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps listed in `feature_info`, in order (strides 2 .. 32 at the paper's config)."""
        self.check_input(x)
        wanted = {info["module"] for info in self.feature_info}
        features = []
        for name in self.trunk_names:
            x = getattr(self, name)(x)
            if name in wanted:
                features.append(x)
        return features


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, ConvBnReLU):
        return module.conv.out_channels
    return module.out_channels

