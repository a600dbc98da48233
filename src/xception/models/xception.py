"""Xception (Chollet, CVPR 2017, Figure 5), exactly as the author's Keras Applications code builds it,
and the aligned Xception family DeepLab built on it (Chen et al., ECCV 2018, section 3.2).

The architecture is data: `XceptionConfig` holds the entry, middle and exit flows as tuples of
`BlockSpec`, and the paper's ablations (residual connections, an activation between depthwise and
pointwise, the number of channel segments, fully-connected layers in the head) are fields of it.
Numerics follow Keras, so that the official weights load exactly: BatchNorm epsilon 1e-3 and
TensorFlow "same" padding, including the asymmetric stride-2 pools (see `SamePadMaxPool2d`).

DeepLab's additions are fields too: `output_stride` (atrous convolution past it, the rule of
`atrous_placements`), strided separable convolutions instead of max pools (`BlockSpec.stride`),
BatchNorm after the depthwise convolution, pre-activation blocks, and stochastic depth.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from xception.models.head import ClassifierNetwork
from xception.models.layers import (
    DropPath,
    MidActivation,
    Order,
    SamePadMaxPool2d,
    SeparableConv2d,
    scale_channels,
)

if TYPE_CHECKING:
    from xception.models.spec import ModelSpec

OutputStride = Literal[8, 16, 32]


@dataclass(frozen=True)
class BlockSpec:
    """One module of Figure 5: separable convolutions, each followed by BatchNorm.

    Every separable convolution after the first is preceded by a ReLU; the first one is preceded
    by a ReLU only when `first_activation` (block2 and block14 start right after an activation).
    `pool` ends the main path with a 3x3 stride-2 max pool (and makes the shortcut a strided 1x1
    convolution); `end_activation` adds the ReLU after the last BatchNorm (block14 only).
    DeepLab's aligned family downsamples with `stride=2` on the last separable convolution instead
    of a pool, and its last block has a ReLU inside each separable convolution
    (`sepconv_activation`, DeepLab's `activation_fn_in_separable_conv`).
    """

    channels: tuple[int, ...]
    first_activation: bool = True
    pool: bool = False
    stride: Literal[1, 2] = 1
    residual: bool = True
    end_activation: bool = False
    sepconv_activation: bool = False

    def __post_init__(self) -> None:
        if self.stride not in (1, 2) or (self.pool and self.stride == 2):
            raise ValueError(f"a block downsamples once, by a pool or by stride 2; got pool={self.pool}, stride={self.stride}")

    @property
    def downsamples(self) -> bool:
        return self.pool or self.stride == 2


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
    # DeepLab (Chen et al. 2018). Past `output_stride` every downsampling runs at stride 1 and the
    # later spatial operations are dilated instead (see `atrous_placements`); 32 is the paper's net.
    output_stride: OutputStride = 32
    stem_padding: Literal["valid", "fixed"] = "valid"  # "fixed": DeepLab's symmetric k // 2
    depthwise_bn: bool = False  # BatchNorm after the depthwise convolution too (aligned family)
    preact: bool = False  # BatchNorm and ReLU before each separable convolution (xception41p, 65p)
    drop_path_rate: float = 0.0  # stochastic depth on the residual branches, linear over depth

    def __post_init__(self) -> None:
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32; got {self.output_stride}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1); got {self.drop_path_rate}")

    def scale(self, channels: int) -> int:
        """Channels after the width multiplier: a multiple of 8 so every segment count 1-8 divides it."""
        return scale_channels(channels, self.width)

    def blocks(self) -> list[BlockSpec]:
        """The 13 modules after the stem in order (block2 .. block14 at the paper's depth)."""
        return [*self.entry_flow, *([self.middle_flow] * self.middle_repeats), *self.exit_flow]


@dataclass(frozen=True)
class Placement:
    """Where the atrous rule puts one block: its stride, its dilation, its input's reduction."""

    stride: int
    dilation: int
    reduction: int


def atrous_placements(config: XceptionConfig) -> list[Placement]:
    """DeepLab's rule (its `stack_blocks_dense`), one `Placement` per block of `config.blocks()`.

    Until the reduction reaches `output_stride`, blocks downsample as specified, undilated. A
    downsampling block that would pass it runs at stride 1 (its pool or strided convolution and
    its strided shortcut alike) at the dilation reached so far, and every later spatial operation
    is dilated by a further factor of 2. At output stride 32 nothing changes.
    """
    reduction, dilation = config.stem_stride, 1
    placements = []
    for spec in config.blocks():
        factor = 2 if spec.downsamples else 1
        if reduction * factor > config.output_stride:
            placements.append(Placement(stride=1, dilation=dilation, reduction=reduction))
            dilation *= factor
        else:
            placements.append(Placement(stride=factor, dilation=dilation, reduction=reduction))
            reduction *= factor
    return placements


def _bn(channels: int, config: XceptionConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=config.bn_eps, momentum=config.bn_momentum)


class Stem(nn.Module):
    """block1: two regular 3x3 convolutions, each with BatchNorm and ReLU.

    The paper's padding is "valid": (N, in_channels, 299, 299) -> (N, 64, 147, 147). DeepLab's
    ("fixed", 1 pixel each side) gives (N, 64, 150, 150). The pre-activation family leaves the
    second convolution bare: the first block's BatchNorm and ReLU follow it.
    """

    def __init__(self, in_channels: int, config: XceptionConfig) -> None:
        super().__init__()
        c1, c2 = (config.scale(c) for c in config.stem_channels)
        padding = 1 if config.stem_padding == "fixed" else 0
        self.conv1 = nn.Conv2d(in_channels, c1, 3, stride=config.stem_stride, padding=padding, bias=False)
        self.bn1 = _bn(c1, config)
        # In place: a ReLU that reads a BatchNorm output changes nothing a backward pass needs
        # (BatchNorm saves its input), and saves one activation map per ReLU (~8% per training
        # step here, see runtime.py). Module names and state_dict keys are unchanged.
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=padding, bias=False)
        self.bare_conv2 = config.preact
        if not self.bare_conv2:
            self.bn2 = _bn(c2, config)
            self.act2 = nn.ReLU(inplace=True)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.act1(self.bn1(self.conv1(x))))
        return x if self.bare_conv2 else self.act2(self.bn2(x))


class XceptionBlock(nn.Module):
    """One module of Figure 5 (`BlockSpec`), with its residual connection when it has one.

    Module names follow Keras: `sepconv{m}` / `bn{m}` are `block{n}_sepconv{m}` / `..._bn`.
    The shortcut is the identity when shapes match, else a strided 1x1 convolution and BatchNorm,
    taken from the block's input before any activation. `placement` sets the stride of the pool,
    the last separable convolution and the shortcut, and the dilation of every spatial operation.

    Pre-activation blocks (`config.preact`): `preact` (BatchNorm, ReLU) on the input feeds both
    paths, `bn{m}` and a ReLU precede separable convolution m > 1, and the shortcut has no BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        spec: BlockSpec,
        config: XceptionConfig,
        *,
        placement: Placement,
        drop_path: float,
    ) -> None:
        super().__init__()
        channels = [config.scale(c) for c in spec.channels]
        if config.preact and spec.first_activation:
            self.preact = nn.Sequential(OrderedDict(bn=_bn(in_channels, config), act=nn.ReLU()))
        else:
            self.preact = None
        units: OrderedDict[str, nn.Module] = OrderedDict()
        previous = in_channels
        for m, out in enumerate(channels, start=1):
            last = m == len(channels)
            if config.preact and m > 1:
                units[f"bn{m}"] = _bn(previous, config)
                units[f"act{m}"] = nn.ReLU(inplace=True)
            elif not config.preact and (m > 1 or spec.first_activation):
                # The first ReLU reads the block input, which the shortcut reads too: not in place.
                # The others read a BatchNorm output: in place is safe (see Stem).
                units[f"act{m}"] = nn.ReLU(inplace=m > 1)
            spatial_channels = previous if config.order == "depthwise_first" else out
            units[f"sepconv{m}"] = SeparableConv2d(
                previous,
                out,
                stride=placement.stride if (last and spec.stride == 2) else 1,
                dilation=placement.dilation,
                segments=config.segments,
                order=config.order,
                mid_activation="relu" if spec.sepconv_activation else config.mid_activation,
                mid_bn=_bn(spatial_channels, config) if config.depthwise_bn else None,
            )
            if not config.preact:
                units[f"bn{m}"] = _bn(out, config)
            previous = out
        if spec.end_activation:
            units[f"act{len(channels) + 1}"] = nn.ReLU(inplace=True)
        if spec.pool:
            units["pool"] = SamePadMaxPool2d(3, placement.stride, placement.dilation)
        self.main = nn.Sequential(units)
        self.out_channels = previous
        # The feature tap of a block that downsamples by a strided convolution is the input of that
        # convolution's unit (DeepLab's and timm's); for a pooling block it is the block's input.
        self.downsamples = spec.downsamples
        self.tap_index: int | None = None
        self.tap_channels = in_channels
        if spec.stride == 2:
            last_unit = f"bn{len(channels)}" if config.preact else f"sepconv{len(channels)}"
            self.tap_index = list(units).index(last_unit)
            self.tap_channels = channels[-2] if len(channels) > 1 else in_channels
        self.residual = spec.residual and config.residual
        self.shortcut: nn.Module | None = None
        if self.residual and (spec.downsamples or in_channels != previous):
            # Kept at stride 1 past the output stride (timm drops it when the channels also match),
            # so that the same weights load at every output stride.
            shortcut: OrderedDict[str, nn.Module] = OrderedDict(
                conv=nn.Conv2d(in_channels, previous, 1, stride=placement.stride, bias=False)
            )
            if not config.preact:
                shortcut["bn"] = _bn(previous, config)
            self.shortcut = nn.Sequential(shortcut)
        self.drop_path = DropPath(drop_path) if self.residual and drop_path > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact is not None:
            x = self.preact(x)
        return self._add_shortcut(self.main(x), x)

    def forward_with_tap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the block's output, the input of its strided unit) for a block with a `tap_index`."""
        if self.preact is not None:
            x = self.preact(x)
        tap = self.main[: self.tap_index](x)
        return self._add_shortcut(self.main[self.tap_index :](tap), x), tap

    def _add_shortcut(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return out
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + (x if self.shortcut is None else self.shortcut(x))


@contextlib.contextmanager
def _batchnorm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Restore `module`'s BatchNorm buffers on exit: a checkpointed block's recomputation in the
    backward pass would otherwise update the running statistics a second time."""
    saved = [(b, b.clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _recompute_contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    return contextlib.nullcontext(), _batchnorm_statistics_kept(module)


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
        spec: ModelSpec | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate, spec=spec)
        self.config = config
        self.grad_checkpointing = False

        self.stem = Stem(in_channels, config)  # (N, 64, 147, 147) at 299 px
        channels = self.stem.out_channels
        placements = iter(atrous_placements(config))
        depth = len(config.blocks())
        # One feature map before each downsampling block and the last one: their number and
        # channels do not depend on the output stride, their reductions do.
        self.feature_info: list[dict] = []
        previous_name = "stem"
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
                placement = next(placements)
                rate = config.drop_path_rate * (n - 2) / max(depth - 1, 1)
                block = XceptionBlock(channels, spec, config, placement=placement, drop_path=rate)
                blocks[f"block{n}"] = block
                if block.downsamples:
                    tap_name = previous_name
                    if block.tap_index is not None:
                        tap_name = f"{flow_name}.block{n}.main.{list(block.main._modules)[block.tap_index - 1]}"
                    info = dict(num_chs=block.tap_channels, reduction=placement.reduction, module=tap_name)
                    self.feature_info.append(info)
                channels = block.out_channels
                previous_name = f"{flow_name}.block{n}"
            setattr(self, flow_name, nn.Sequential(blocks))
        final_reduction = placement.reduction * placement.stride
        self.feature_info.append(dict(num_chs=channels, reduction=final_reduction, module=previous_name))
        self.build_head(channels, fc_layers=config.fc_layers)

    @property
    def min_input_size(self) -> int:
        """The smallest height and width the stem admits ("valid": two 3x3 convolutions)."""
        return 2 * self.config.stem_stride + 3 if self.config.stem_padding == "valid" else 1

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them (the
        stem's are kept). Same gradients and BatchNorm statistics; less memory, more compute."""
        self.grad_checkpointing = enable

    def blocks(self) -> Iterator[tuple[str, XceptionBlock]]:
        """("entry_flow.block2", block), ... for every block after the stem, in order."""
        for flow_name in ("entry_flow", "middle_flow", "exit_flow"):
            for name, block in getattr(self, flow_name).named_children():
                yield f"{flow_name}.{name}", block

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_features, H / output_stride - ish, ...) before pooling."""
        self.check_input(x)
        x = self.stem(x)
        for _, block in self.blocks():
            x = self._run(block, x)
        return x

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps listed in `feature_info` (strides 2, 4, 8, 16, 32 at stem_stride 2 and
        output stride 32; at output stride 16 the last two are both at 16)."""
        self.check_input(x)
        features = []
        x = self.stem(x)
        for _, block in self.blocks():
            if block.tap_index is not None:
                x, tap = self._run(block.forward_with_tap, x, module=block)
                features.append(tap)
                continue
            if block.downsamples:
                features.append(x)
            x = self._run(block, x)
        features.append(x)
        return features

    def _run(self, function, x: torch.Tensor, *, module: nn.Module | None = None):
        module = function if module is None else module
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(function, x, use_reentrant=False, context_fn=partial(_recompute_contexts, module))
        return function(x)
