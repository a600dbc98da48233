"""Building blocks of Xception as the paper frames them (sections 1.2, 3 and 4.7).

`SeparableConv2d` is the one place where the paper's spectrum lives: the number of channel
segments of the spatial convolution, the order of the two operations and the optional activation
(and, for DeepLab's aligned Xception, BatchNorm) between them. `SamePadMaxPool2d` reproduces
TensorFlow's "same" padding, which the Keras weights were trained with, also at stride 1 with
dilation (DeepLab's atrous rule). `DropPath` is stochastic depth on a residual branch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

MidActivation = Literal["relu", "elu"] | None
Order = Literal["depthwise_first", "pointwise_first"]


def scale_channels(channels: int, width: float) -> int:
    """`channels` x `width`, rounded to a multiple of 8 (at least 8) so that every segment count
    from 1 to 8 divides it; unchanged at width 1. Xception and Inception V3 scale alike with it."""
    if width == 1.0:
        return channels
    return max(8, int(round(channels * width / 8)) * 8)


def make_activation(name: Literal["relu", "elu"]) -> nn.Module:
    """The activations the paper tries between depthwise and pointwise (section 4.7, Figure 10)."""
    if name == "relu":
        return nn.ReLU()
    if name == "elu":
        return nn.ELU()
    raise ValueError(f"unknown activation {name!r}; valid: 'relu', 'elu' or None")


class SeparableConv2d(nn.Module):
    """A spatial k x k convolution on `segments` channel groups and a 1x1 pointwise convolution.

    - segments = channels of the spatial convolution (``segments=None``): a depthwise separable
      convolution, the "extreme" end of the paper's spectrum (section 1.2);
    - segments = 1: a regular k x k convolution next to a 1x1 convolution (the other extreme);
    - 3 or 4 segments: roughly where Inception modules lie.

    ``order="depthwise_first"`` is Xception's separable convolution (spatial, then pointwise, as in
    Keras ``SeparableConv2D``); ``"pointwise_first"`` is the "extreme Inception" module of Figure 4.
    Nothing sits between the two operations unless ``mid_activation`` is set (section 4.7).

    ``mid_bn`` (DeepLab's aligned Xception) is a BatchNorm on the first operation's output, before
    ``mid_activation``. ``dilation`` spreads the spatial kernel (atrous convolution, DeepLab).

    Padding is ``dilation * (kernel_size // 2)`` on each side: TensorFlow's "same" at stride 1 (for
    any dilation), and DeepLab's "fixed" padding at stride 2, which the aligned family uses.
    Input (N, in_channels, H, W) -> output (N, out_channels, H', W'), H' = ceil(H / stride).
    No bias: BatchNorm follows every separable convolution in Xception.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        segments: int | None = None,
        order: Order = "depthwise_first",
        mid_activation: MidActivation = None,
        mid_bn: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if order not in ("depthwise_first", "pointwise_first"):
            raise ValueError(f"unknown order {order!r}; valid: 'depthwise_first', 'pointwise_first'")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for symmetric 'same' padding; got {kernel_size}")
        if stride != 1 and dilation != 1:
            raise ValueError("a strided convolution is never dilated here (DeepLab's rule: stride 1, then dilate)")
        spatial_channels = in_channels if order == "depthwise_first" else out_channels
        groups = spatial_channels if segments is None else segments
        if groups < 1 or spatial_channels % groups != 0:
            raise ValueError(
                f"segments={segments} must divide the {spatial_channels} channels of the spatial "
                "convolution; use None for depthwise (one segment per channel) or a divisor"
            )
        self.order = order
        self.segments = groups
        spatial = nn.Conv2d(
            spatial_channels,
            spatial_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        first, second = ("depthwise", "pointwise") if order == "depthwise_first" else ("pointwise", "depthwise")
        # Registration order is execution order, so the state dict lists tensors as they run.
        setattr(self, first, spatial if first == "depthwise" else pointwise)
        # Only registered when present, so the paper's networks keep their module tree and state dict.
        self.mid_bn: nn.Module | None = mid_bn
        self.mid = make_activation(mid_activation) if mid_activation else nn.Identity()
        setattr(self, second, spatial if second == "depthwise" else pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = (
            (self.depthwise, self.pointwise) if self.order == "depthwise_first" else (self.pointwise, self.depthwise)
        )
        x = first(x)
        if self.mid_bn is not None:
            x = self.mid_bn(x)
        return second(self.mid(x))


class SamePadMaxPool2d(nn.Module):
    """3x3 max pooling with TensorFlow's "same" padding, at stride 2 (Figure 5) or at stride 1 with
    a dilation (a pool whose stride DeepLab's atrous rule removed; "same" pads `dilation` each side).

    TF pads max((out - 1) * stride + kernel - in, 0) in total with the smaller half first, so an
    even-sized input is padded only after (bottom/right). PyTorch's ``padding=1`` pads both sides
    and shifts every window by one pixel (69% of block3_pool's outputs differ at 299 px). Both
    cases map onto a built-in pooling without copying the tensor: odd sizes need symmetric
    padding of 1, even sizes need no padding before and a partial last window (``ceil_mode``).
    Input (N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2)).
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2, dilation: int = 1) -> None:
        super().__init__()
        if kernel_size != 3 or stride not in (1, 2) or (stride == 2 and dilation != 1) or dilation < 1:
            raise ValueError(
                "SamePadMaxPool2d implements Figure 5's 3x3 pools: stride 2 undilated, or stride 1 "
                f"with any dilation; got kernel_size={kernel_size}, stride={stride}, dilation={dilation}"
            )
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation

    def extra_repr(self) -> str:
        if self.stride == 2:
            return ""  # the paper's pools print as before
        return f"stride={self.stride}, dilation={self.dilation}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            d = self.dilation
            if d == 1:
                return F.max_pool2d(x, 3, 1, padding=1)
            # PyTorch's built-in padding stops at half the undilated kernel, so pad here.
            return F.max_pool2d(F.pad(x, (d, d, d, d), value=float("-inf")), 3, 1, dilation=d)
        h, w = x.shape[-2:]
        if h % 2 == 1 and w % 2 == 1:
            return F.max_pool2d(x, 3, 2, padding=1)
        if h % 2 == 0 and w % 2 == 0 and min(h, w) > 2:
            return F.max_pool2d(x, 3, 2, padding=0, ceil_mode=True)
        # Mixed parity (non-square inputs), or a 2-pixel side, whose 3-pixel window ONNX runtimes
        # (OpenVINO) refuse without padding: pad explicitly, smaller half first.
        pad_h, pad_w = (2 if h % 2 else 1), (2 if w % 2 else 1)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=float("-inf"))
        return F.max_pool2d(x, 3, 2)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) on a residual branch: in training, each sample's branch
    is zeroed with probability `drop_prob` and the survivors scaled by 1 / (1 - drop_prob); in
    eval mode the identity. Input and output (N, ...), same shape."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1); got {drop_prob}")
        self.drop_prob = drop_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)
