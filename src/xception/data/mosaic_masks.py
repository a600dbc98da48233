"""Fashion-MNIST mosaics with per-pixel labels: a real-pixel semantic segmentation task.

The mosaics are `xception.data.mosaic`'s (the same layouts for the same seed). A pixel's label is
1 + the class of the garment in its tile where that garment's pixel is foreground (at least
`FOREGROUND_THRESHOLD` of 255), and 0 (background) elsewhere, black tiles included: 11 classes.
Training mosaics are cropped (zero padding) and flipped together with their masks.
"""

from __future__ import annotations

import torch

from xception.data.batch_transforms import crop_flip
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.fashion_mnist import CLASSES
from xception.data.mosaic import EMPTY, MosaicImages, build_mosaic_split, held_out_split

BACKGROUND = 0
FOREGROUND_THRESHOLD = 8  # uint8 of 255: Fashion-MNIST items sit on exact 0; this drops faint halos
SEGMENTATION_CLASSES = ("background", *CLASSES)


class MosaicMasks(torch.utils.data.Dataset):
    """Items (image float32 (C, S, S) in [-1, 1], mask int64 (S, S) in 0..10) over `mosaics`.

    S must be the mosaic's own side (28 x grid): masks are never resized. `augment` crops (with
    `padding` zero pixels, background in the mask) and flips image and mask alike.
    """

    def __init__(self, mosaics: MosaicImages, *, augment: bool, padding: int) -> None:
        side = 28 * mosaics.grid
        if mosaics.pipeline.image_size != side:
            raise ValueError(
                f"segmentation mosaics are {side} px ({mosaics.grid}x{mosaics.grid} tiles of 28); "
                f"set the image size to {side} (--image-size {side}), masks are not resized"
            )
        self.mosaics = mosaics
        self.augment = augment
        self.padding = padding
        self.pipeline = mosaics.pipeline  # augment=False: scaling and channels only

    def __len__(self) -> int:
        return len(self.mosaics)

    def masks(self, indices: torch.Tensor) -> torch.Tensor:
        """int64 (B, S, S) labels of the mosaics at `indices`."""
        layouts = self.mosaics.layouts[indices]
        tile_classes = torch.where(layouts == EMPTY, -1, self.mosaics.source_labels[layouts.clamp(min=0)]) + 1
        grid = self.mosaics.grid
        per_pixel = tile_classes.view(-1, grid, 1, grid, 1).expand(-1, grid, 28, grid, 28).reshape(-1, 28 * grid, 28 * grid)
        foreground = self.mosaics.raw_images(indices) >= FOREGROUND_THRESHOLD
        return torch.where(foreground, per_pixel, BACKGROUND)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        index = torch.as_tensor(indices, dtype=torch.long)
        images, masks = self.mosaics.raw_images(index)[:, None], self.masks(index)[:, None].to(torch.uint8)
        if self.augment:
            both = torch.cat([images, masks], dim=1)
            batch = len(index)
            offsets = torch.randint(0, 2 * self.padding + 1, (2, batch))
            both = crop_flip(both, top=offsets[0], left=offsets[1], flip=torch.rand(batch) < 0.5, padding=self.padding)
            images, masks = both[:, :1], both[:, 1:]
        inputs = self.pipeline(images)
        return list(zip(inputs.unbind(0), masks[:, 0].long().unbind(0), strict=True))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]


def build_mosaic_masks(config: DataConfig) -> Datasets:
    """Training and validation mosaics (test-image mosaics, or with `val_split` those of held-out
    training items: `xception.data.mosaic.held_out_split`) with their per-pixel labels (11 classes,
    0 background)."""
    splits = {}
    for role, split, augment in (("train", "train", config.augment), ("val", held_out_split(config), False)):
        mosaics = build_mosaic_split(config, split, augment=False)
        splits[role] = MosaicMasks(mosaics, augment=augment, padding=config.crop_padding)
    return Datasets(
        train=splits["train"],
        val=splits["val"],
        num_classes=len(SEGMENTATION_CLASSES),
        class_names=list(SEGMENTATION_CLASSES),
        multilabel=False,
        class_weights=None,
    )
