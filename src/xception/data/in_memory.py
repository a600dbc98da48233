"""A map-style dataset over uint8 images held in memory, prepared a batch at a time."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from xception.data.batch_transforms import TensorPipeline


class InMemoryImages(Dataset):
    """Items (image float32 (C, S, S) in [-1, 1], target) from uint8 images (N, H, W) in memory.

    targets: (N,) int64 class indices (an item's target is a Python int) or (N, K) float32 multi-hot
    rows (an item's target is a (K,) tensor). `__getitems__`, which torch's DataLoader calls with a
    whole batch of indices, runs the pipeline once per batch; `__getitem__` is the same for one index.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, *, pipeline: TensorPipeline) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = targets
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.targets)

    def raw_images(self, indices: torch.Tensor) -> torch.Tensor:
        """The stored uint8 images (B, H, W) at `indices`, before any preprocessing."""
        return self.images[indices]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int | torch.Tensor]]:
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.pipeline(self.raw_images(index))
        targets = self.targets[index]
        labels = targets.tolist() if targets.ndim == 1 else list(targets.unbind(0))
        return list(zip(images.unbind(0), labels, strict=True))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        return self.__getitems__([index])[0]
