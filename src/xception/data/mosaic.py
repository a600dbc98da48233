"""Fashion-MNIST mosaics: a real-pixel multi-label task (JFT-style) built from Fashion-MNIST items.

A mosaic is a grid x grid board of 28 x 28 cells. Each cell holds a Fashion-MNIST item with
probability 1/2 (at least one per mosaic) or stays black; its target is the multi-hot set of the
placed items' classes. Item classes follow Zipf-like frequencies p(c) ~ 1 / (c + 1) ** skew, so classes
are unequally common, as JFT's are, and MAP@100 weighted by frequency (FastEval14k) differs from the
plain mean. Training mosaics use Fashion-MNIST's training images, validation mosaics its test images;
with `DataConfig.val_split` the validation mosaics tile a held-out, stratified fraction of the
training items instead (`xception.data.split`), the training mosaics only the rest, and the test
mosaics stay as they are for a final measurement. Everything is a function of the seed. Only the
layouts (which item in which cell) are stored; the pixels are assembled a batch at a time, so 60000
mosaics cost a few megabytes.

Canvases (source "canvas") are the single-label relative: exactly one item, drawn uniformly from the
split, in one random cell, the other cells black; the target is its class. Where the item lies is
known, so a class activation map can be checked against it (`xception.explain.pointing`).
"""

from __future__ import annotations

from typing import Literal

import torch

from xception.data.batch_transforms import TensorPipeline
from xception.data.class_weights import frequency_class_weights
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.fashion_mnist import CLASSES, ensure_fashion_mnist, load_fashion_mnist
from xception.data.in_memory import BatchPreparedImages
from xception.data.split import stratified_split

EMPTY = -1  # a layout entry for a black cell
FILL_PROBABILITY = 0.5
# The layout streams: seed * 2 for the training mosaics, seed * 2 + 1 for the test mosaics (as they
# always were), and VALIDATION_STREAM + seed for the mosaics of the held-out training items.
VALIDATION_STREAM = 1 << 40
MosaicSplit = Literal["train", "val", "test"]


def class_frequencies(num_classes: int, skew: float) -> torch.Tensor:
    """p(c) ~ 1 / (c + 1) ** skew, float64 (num_classes,) summing to 1; skew 0 is uniform."""
    weights = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64) ** skew
    return weights / weights.sum()


def mosaic_layouts(
    labels: torch.Tensor, *, count: int, grid: int, skew: float, generator: torch.Generator
) -> torch.Tensor:
    """Which source item fills each cell: int64 (count, grid * grid), row-major cells, EMPTY for black.

    labels: (M,) class of each source item; every class must have at least one item.
    """
    num_classes = int(labels.max()) + 1
    cells = grid * grid
    filled = torch.rand(count, cells, generator=generator) < FILL_PROBABILITY
    forced = torch.randint(0, cells, (count,), generator=generator)
    filled[torch.arange(count), forced] |= ~filled.any(dim=1)  # at least one item per mosaic
    classes = torch.multinomial(
        class_frequencies(num_classes, skew), count * cells, replacement=True, generator=generator
    ).view(count, cells)
    by_class = labels.argsort(stable=True)  # source indices grouped by class
    sizes = torch.bincount(labels, minlength=num_classes)
    starts = sizes.cumsum(0) - sizes
    within = (torch.rand(count, cells, generator=generator, dtype=torch.float64) * sizes[classes]).long()
    items = by_class[starts[classes] + within]
    return torch.where(filled, items, EMPTY)


def canvas_layouts(num_items: int, *, count: int, grid: int, generator: torch.Generator) -> torch.Tensor:
    """One source item (uniform over `num_items`) in one random cell of each canvas, the other cells
    EMPTY: int64 (count, grid * grid), row-major cells."""
    cells = torch.randint(0, grid * grid, (count,), generator=generator)
    items = torch.randint(0, num_items, (count,), generator=generator)
    layouts = torch.full((count, grid * grid), EMPTY, dtype=torch.int64)
    layouts[torch.arange(count), cells] = items
    return layouts


class MosaicImages(BatchPreparedImages):
    """Mosaics of `source` images (M, 28, 28) laid out by `layouts` (N, grid * grid): multi-hot
    targets (N, num_classes), or with `single_label` (one item per layout, canvases) the int64 (N,)
    class of the item."""

    def __init__(
        self,
        source: torch.Tensor,
        source_labels: torch.Tensor,
        layouts: torch.Tensor,
        *,
        grid: int,
        num_classes: int,
        pipeline: TensorPipeline,
        single_label: bool = False,
    ) -> None:
        placed = torch.where(layouts == EMPTY, num_classes, source_labels[layouts.clamp(min=0)])
        if single_label:
            if not bool(((layouts != EMPTY).sum(dim=1) == 1).all()):
                raise ValueError("single-label mosaics need exactly one item per layout")
            targets = placed.min(dim=1).values  # the one cell that is not num_classes
        else:
            targets = torch.zeros(len(layouts), num_classes + 1).scatter_(1, placed, 1.0)[:, :num_classes]
        super().__init__(targets, pipeline=pipeline)
        self.source = source
        self.source_labels = source_labels
        self.layouts = layouts
        self.grid = grid

    def raw_images(self, indices: torch.Tensor) -> torch.Tensor:
        """The uint8 mosaics (B, grid * 28, grid * 28) at `indices`, cells in row-major order."""
        layouts = self.layouts[indices]  # (B, cells)
        tiles = self.source[layouts.clamp(min=0)] * (layouts != EMPTY)[..., None, None].to(torch.uint8)
        batch, _, height, width = tiles.shape
        tiles = tiles.view(batch, self.grid, self.grid, height, width).permute(0, 1, 3, 2, 4)
        return tiles.reshape(batch, self.grid * height, self.grid * width)

    def item_cells(self, indices: torch.Tensor) -> torch.Tensor:
        """int64 (B,): the row-major cell of the first item of each mosaic at `indices` (a canvas's only one)."""
        return (self.layouts[indices] != EMPTY).to(torch.int64).argmax(dim=1)


def held_out_split(config: DataConfig) -> Literal["val", "test"]:
    """The split that validates: "val" (held-out training items) with `config.val_split`, else "test"."""
    return "val" if config.val_split is not None else "test"


def split_items(config: DataConfig, labels: torch.Tensor, split: MosaicSplit) -> torch.Tensor:
    """int64 ascending: the indices of the Fashion-MNIST items (of `labels`, its training or test
    split) that `split`'s mosaics tile. Without `config.val_split` all of them; with it, "train" and
    "val" are the two disjoint parts of `xception.data.split.stratified_split(labels, fraction=
    config.val_split, seed=config.seed)`, a pure function of the two, so a resume cuts the same."""
    if split == "test" or config.val_split is None:
        if split == "val":
            raise ValueError("validation mosaics of held-out training items need val_split")
        return torch.arange(len(labels))
    train, val = stratified_split(labels.tolist(), fraction=config.val_split, seed=config.seed)
    return torch.as_tensor(train if split == "train" else val, dtype=torch.int64)


def build_mosaic_split(config: DataConfig, split: MosaicSplit, *, augment: bool) -> MosaicImages:
    """The mosaics (or canvases, for source "canvas") of one split: "train" (config.mosaic_train_size
    of them, from Fashion-MNIST's training items less those held out by config.val_split), "val"
    (config.mosaic_val_size, from the held-out training items; needs val_split) or "test"
    (config.mosaic_val_size, from Fashion-MNIST's test items). Layouts index the whole Fashion-MNIST
    split (`source`), so the items of two splits can be compared."""
    images, labels = load_fashion_mnist(ensure_fashion_mnist(config.path, config.download),
                                        "test" if split == "test" else "train")
    items = split_items(config, labels, split)
    count = config.mosaic_train_size if split == "train" else config.mosaic_val_size
    # Separate streams per split, so that changing one split's size leaves the others unchanged.
    seed = {"train": config.seed * 2, "test": config.seed * 2 + 1, "val": VALIDATION_STREAM + config.seed}[split]
    generator = torch.Generator().manual_seed(seed)
    canvas = config.source == "canvas"
    if canvas:
        layouts = canvas_layouts(len(items), count=count, grid=config.mosaic_grid, generator=generator)
    else:
        layouts = mosaic_layouts(
            labels[items], count=count, grid=config.mosaic_grid, skew=config.mosaic_class_skew, generator=generator
        )
    layouts = torch.where(layouts == EMPTY, EMPTY, items[layouts.clamp(min=0)])  # into the whole split
    pipeline = TensorPipeline(
        image_size=config.image_size,
        in_channels=config.in_channels,
        augment=augment,
        padding=config.crop_padding,
        erase_probability=config.erase_probability,
    )
    return MosaicImages(images, labels, layouts, grid=config.mosaic_grid, num_classes=len(CLASSES),
                        pipeline=pipeline, single_label=canvas)


def build_mosaic(config: DataConfig) -> Datasets:
    """Training and validation mosaics (`held_out_split`); class weights are the label frequencies of
    the training mosaics."""
    train = build_mosaic_split(config, "train", augment=config.augment)
    val = build_mosaic_split(config, held_out_split(config), augment=False)
    return Datasets(
        train=train,
        val=val,
        num_classes=len(CLASSES),
        class_names=list(CLASSES),
        multilabel=True,
        class_weights=frequency_class_weights(train.targets),
    )


def build_canvas(config: DataConfig) -> Datasets:
    """Training and validation canvases (one garment in one random cell, `held_out_split`), single-label."""
    return Datasets(
        train=build_mosaic_split(config, "train", augment=config.augment),
        val=build_mosaic_split(config, held_out_split(config), augment=False),
        num_classes=len(CLASSES),
        class_names=list(CLASSES),
        multilabel=False,
        class_weights=None,
    )
