"""The data configuration: which dataset, where, and how its images are prepared.

Every default of the data layer lives here and nowhere else; the builders take required arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from xception.data.sources import get_source, sources_where
from xception.description import Preprocessing, WeightsDescription

Interpolation = Literal["bilinear", "bicubic"]
# How a photo becomes a square input: "crop" keeps the aspect ratio and crops (the Inception crop,
# the evaluation centre crop); "squash" resizes the whole image to the square, as FaceForensics++
# prepares its face crops, so nothing of the image is cut off.
Resize = Literal["crop", "squash"]
RESIZES: tuple[str, ...] = get_args(Resize)
# The order of training items: a fresh permutation per epoch, or draws with replacement that give
# every class the same expected share of each epoch (xception.data.balance).
Sampler = Literal["shuffle", "balanced"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)
# Per-class weights of the training loss: none, or inversely proportional to the class's count in
# the training split (xception.data.balance.loss_class_weights).
ClassWeighting = Literal["none", "inverse_frequency"]
CLASS_WEIGHTINGS: tuple[str, ...] = get_args(ClassWeighting)
# The label of mask pixels that no loss and no metric counts: PASCAL VOC's "void" (object borders,
# unlabelled regions), and the padding of a mask.
IGNORE_INDEX = 255

# Unreadable image files (xception.data.bad_images): stop at the first, or leave them out and count
# them, stopping when more than MAX_BAD_FRACTION of a split is unreadable.
BadImagePolicy = Literal["error", "skip"]
BAD_IMAGE_POLICIES: tuple[str, ...] = ("error", "skip")
DEFAULT_BAD_IMAGES: BadImagePolicy = "error"
MAX_BAD_FRACTION = 0.001


@dataclass(frozen=True)
class DataConfig:
    """What `build_datasets` builds.

    source: "fashion_mnist" (the four IDX files), "imagefolder" (`train/<class>/*`, `val/<class>/*`),
        "multilabel" (a manifest directory, see `xception.data.manifest`), "mosaic" (Fashion-MNIST
        items tiled on a grid, multi-hot targets, built in memory), "mosaic_masks" (the same mosaics
        with per-pixel labels, for segmentation: `xception.data.mosaic_masks`), "canvas" (one Fashion-MNIST
        item in one random cell of the mosaic grid, the rest black, single-label: where the item is, is
        known, for checking explanations), "segfolder" (images and PNG
        masks of class indices, VOC's layout included: `xception.data.segfolder`) or "webdataset" (tar shards written
        by `xception.data.shards.write_shards`), or "imagenet" (the ILSVRC 2012 validation set alone,
        for evaluating published weights; see `xception.data.imagenet` for its two layouts).
    path: the dataset's directory. Optional for "fashion_mnist" and the mosaics (see
        `xception.data.fashion_mnist.ensure_fashion_mnist` for the lookup order).
    image_size: side of the square model input, in pixels.
    in_channels: 1 (grayscale) or 3 (RGB; grayscale sources are repeated over the channels).
    crop_fraction: evaluation centre crop as a fraction of the resized side (Inception: 0.875, so
        a 299 crop comes from a 341-pixel resize). Photo sources only.
    interpolation: of every resize of a photo ("bicubic" is how timm measured the Keras Xception weights).
    augment: training augmentation on (photos: the Inception crop and flip; Fashion-MNIST and
        mosaics: random crop with `crop_padding` and flip). Evaluation never augments.
    download: fetch Fashion-MNIST from torchvision's official mirrors when no local copy is found.
    seed: fixes the mosaic layouts; the training randomness is the loader's business.
    crop_padding: zero padding, in pixels of the 28-pixel Fashion-MNIST grid, of the random crop.
    erase_probability: Fashion-MNIST and mosaics: the chance that a training image gets random erasing
        (Zhong et al., 2017: a rectangle of 2-33% of the image filled with noise; 0 = off).
    mosaic_grid: mosaics are `mosaic_grid` x `mosaic_grid` cells of 28 x 28 pixels.
    mosaic_train_size, mosaic_val_size: number of mosaics (train from the Fashion-MNIST training
        images, val from its test images, so no item appears in both; with `val_split`, val from the
        held-out training images).
    mosaic_class_skew: exponent s of the Zipf-like class frequencies p(c) ~ 1 / (c + 1) ** s of the
        items placed (0 = balanced), so that classes differ in frequency as they do in JFT and the
        frequency-weighted MAP@100 differs from the plain mean.
    class_weights_path: a JSON file {class name: weight} for the multilabel source; by default the
        manifest directory's `class_weights.json` when it exists.
    train_examples, val_examples: keep a fixed random subset of this many training / validation
        items (drawn with `seed` and `seed + 1`, so every run of this config sees the same ones;
        None: all of them). Map-style sources only (not "webdataset").
    ground_truth: the imagenet source's labels file for a flat folder of validation images; by default
        one of the standard names found in or above the folder (see `xception.data.imagenet`).
    val_split: "imagefolder" and "segfolder": hold out this fraction (0 < f < 1) of `path` for
        validation, stratified by class and drawn with `seed` (`xception.data.split`). For
        "imagefolder", `path` is then one folder of class folders, not train/ + val/. The mosaic
        sources ("mosaic", "mosaic_masks", "canvas"): hold out this fraction of Fashion-MNIST's
        training items, the same way; the validation mosaics tile only those, the training mosaics
        only the rest, and the test-image mosaics are left for a final measurement (evaluate them
        with val_split None).
    val_group: "imagefolder" with `val_split`: hold out whole groups instead of images, the group of
        an image being its `val_group` column in the folder's `frames.csv` (`xception data frames`
        writes it; "video": no video has frames on both sides), stratified by class as the images
        are (`xception.data.split.grouped_split`).
    resize: photo sources: "crop" (the Inception crop for training, resize and centre crop for
        evaluation) or "squash" (the whole image resized to the square, aspect ratio not kept;
        training adds only the horizontal flip). See `xception.data.transforms`.
    sampler: training order: "shuffle" (a permutation per epoch) or "balanced" (classes drawn
        equally often, with replacement; `xception.data.balance`).
    class_weighting: per-class weights of the training loss: "none" or "inverse_frequency"
        (N / (C n_c) from the training split's counts, scikit-learn's "balanced").
    """

    source: str  # a name in `xception.data.sources.DATA_SOURCES`
    path: str | None
    image_size: int
    in_channels: int = 3
    # The evaluation preparation's defaults are `Preprocessing`'s, written once there.
    crop_fraction: float = Preprocessing.crop_fraction
    interpolation: Interpolation = Preprocessing.interpolation
    augment: bool = True
    download: bool = False
    seed: int = 0
    crop_padding: int = 2
    erase_probability: float = 0.0
    mosaic_grid: int = 2
    mosaic_train_size: int = 60_000
    mosaic_val_size: int = 10_000
    mosaic_class_skew: float = 1.0
    class_weights_path: str | None = None
    train_examples: int | None = None
    val_examples: int | None = None
    ground_truth: str | None = None
    val_split: float | None = None
    val_group: str | None = None
    resize: Resize = Preprocessing.resize
    sampler: Sampler = "shuffle"
    class_weighting: ClassWeighting = "none"

    def __post_init__(self) -> None:
        source = get_source(self.source)
        if source.needs_path and not self.path:
            raise ValueError(f"data source {self.source!r} needs a path: pass the dataset directory")
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {self.image_size}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {self.in_channels}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {self.interpolation!r}")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0 pixels, got {self.crop_padding}")
        if not 0.0 <= self.erase_probability <= 1.0:
            raise ValueError(f"erase_probability must be in [0, 1], got {self.erase_probability}")
        if self.mosaic_grid < 1:
            raise ValueError(f"mosaic_grid must be >= 1 cell per side, got {self.mosaic_grid}")
        if self.mosaic_train_size < 1 or self.mosaic_val_size < 1:
            raise ValueError("mosaic_train_size and mosaic_val_size must be >= 1")
        for name in ("train_examples", "val_examples"):
            size = getattr(self, name)
            if size is not None and size < 1:
                raise ValueError(f"{name} must be >= 1 (or None for all items), got {size}")
            if size is not None and self.source == "webdataset":
                raise ValueError(f"{name} needs a map-style source; 'webdataset' streams its shards, so "
                                 "write shards of the subset instead")
        if self.mosaic_class_skew < 0:
            raise ValueError(f"mosaic_class_skew must be >= 0, got {self.mosaic_class_skew}")
        if self.val_split is not None:
            if not 0.0 < self.val_split < 1.0:
                raise ValueError(f"val_split must be a fraction in (0, 1), got {self.val_split}")
            if not source.val_split:
                raise ValueError(f"val_split cuts one folder of images or the mosaics' training items; data source "
                                 f"{self.source!r} comes with its own validation split (val_split works with "
                                 f"{', '.join(sources_where('val_split'))})")
        if self.val_group is not None and (self.val_split is None or self.source != "imagefolder"):
            raise ValueError("val_group (--group) holds out whole groups of an image folder: it needs the "
                             "imagefolder source and val_split (--val-split)")
        for name, value, valid in (("resize", self.resize, RESIZES), ("sampler", self.sampler, SAMPLERS),
                                   ("class_weighting", self.class_weighting, CLASS_WEIGHTINGS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, got {value!r}")


def recorded_data_config(description: WeightsDescription, **changes: Any) -> DataConfig:
    """The data a weight file records (`description.data`, the training `DataConfig`) with
    augmentation off and the non-None `changes` applied (e.g. path=, source=, ground_truth=): what
    `xception eval` evaluates on and what int8 calibrates on."""
    data = dict(description.data or {})
    data.update({key: value for key, value in changes.items() if value is not None})
    if "source" not in data:
        raise ValueError("the weight file records no data set (it was not written by xception training); give "
                         "--dataset and --data")
    data.setdefault("path", None)
    data.setdefault("image_size", description.image_size)
    return DataConfig(**{**data, "augment": False})
