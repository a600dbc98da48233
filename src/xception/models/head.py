"""The classification head and interface that Xception and its Inception V3 baseline share.

Section 4.3 of the paper: global average pooling, optional fully-connected layers (the JFT
experiments used two of 4096 units), dropout (0.5 on ImageNet) and a logistic layer, whose logits
feed a softmax (ImageNet) or per-class sigmoids (the JFT multi-label task). Both networks are
compared with the same head, so it lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from xception.models.spec import ModelSpec


class ClassifierNetwork(nn.Module, ABC):
    """Base class: a convolutional trunk (`forward_features`) followed by the paper's head.

    Subclasses define `min_input_size`, implement `forward_features`, and call
    `build_head` once their trunk is built (so the head's tensors come last in the state dict).
    Attribute names are the interface other code relies on: `global_pool`, `fc_layers`,
    `head_drop`, `classifier`, `num_features`, `head_hidden_size`, `num_classes`, `in_channels`, `config`, `model_name`.
    """

    def __init__(self, *, num_classes: int, in_channels: int, drop_rate: float, spec: ModelSpec | None) -> None:
        super().__init__()
        if num_classes < 0 or in_channels < 1 or not 0.0 <= drop_rate < 1.0:
            raise ValueError(
                f"need num_classes >= 0, in_channels >= 1 and 0 <= drop_rate < 1; got "
                f"num_classes={num_classes}, in_channels={in_channels}, drop_rate={drop_rate}"
            )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.drop_rate = drop_rate
        # The registered name `create_model` built it as (its `spec`); None when constructed directly.
        self.model_name = spec.name if spec is not None else None

    def build_head(self, channels: int, *, fc_layers: tuple[int, ...]) -> None:
        """Pooling, `fc_layers` (each Linear + ReLU), dropout and the logistic layer (none if 0 classes)."""
        self.num_features = channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        fc: OrderedDict[str, nn.Module] = OrderedDict()
        for i, units in enumerate(fc_layers, start=1):
            fc[f"fc{i}"] = nn.Linear(channels, units)
            fc[f"fc{i}_act"] = nn.ReLU()
            channels = units
        self.fc_layers = nn.Sequential(fc)
        self.head_hidden_size = channels
        self.head_drop = nn.Dropout(self.drop_rate)
        self.classifier: nn.Module = nn.Linear(channels, self.num_classes) if self.num_classes else nn.Identity()

    @property
    @abstractmethod
    def min_input_size(self) -> int:
        """The smallest height and width the trunk admits, in pixels."""

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_features, h, w): the trunk, before pooling."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, num_features, h, w) -> logits (N, num_classes), or (N, head_hidden_size) if pre_logits."""
        x = self.global_pool(x).flatten(1)
        x = self.fc_layers(x)
        x = self.head_drop(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) images -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the logistic layer (a new, randomly initialised one; 0 removes it)."""
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.head_hidden_size, num_classes) if num_classes else nn.Identity()

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless `x` is (N, in_channels, H, W) with H, W >= min_input_size."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (N, {self.in_channels}, H, W); got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"input {tuple(x.shape[-2:])} is smaller than this network admits "
                f"({self.min_input_size} px; the paper uses 299; the *_small models take 28 px)"
            )
