"""Map-style datasets over uint8 images held in memory, prepared a batch at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch.utils.data import Dataset

from xception.data.batch_transforms import TensorPipeline


class BatchPreparedImages(Dataset, ABC):
    """Items (image float32 (C, S, S) in [-1, 1], target) whose uint8 images come from `raw_images`.

    targets: (N,) int64 class indices (an item's target is a Python int) or (N, K) float32 multi-hot
    rows (an item's target is a (K,) tensor). `__getitems__`, which torch's DataLoader calls with a
    whole batch of indices, runs the pipeline once per batch; `__getitem__` is the same for one index.
    Subclasses say where the uint8 images come from.
    """

    def __init__(self, targets: torch.Tensor, *, pipeline: TensorPipeline) -> None:
        self.targets = targets
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.targets)

    @abstractmethod
    def raw_images(self, indices: torch.Tensor) -> torch.Tensor:
        """The uint8 images (B, H, W) at `indices`, before any preprocessing."""

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int | torch.Tensor]]:
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.pipeline(self.raw_images(index))
        targets = self.targets[index]
        labels = targets.tolist() if targets.ndim == 1 else list(targets.unbind(0))
        return list(zip(images.unbind(0), labels, strict=True))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        return self.__getitems__([index])[0]


class InMemoryImages(BatchPreparedImages):
    """`BatchPreparedImages` over a stored uint8 tensor (N, H, W), one image per target."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, *, pipeline: TensorPipeline) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        super().__init__(targets, pipeline=pipeline)
        self.images = images

    def raw_images(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images[indices]
