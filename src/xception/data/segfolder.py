"""Segmentation on your own masks: a folder of images and PNG masks of class indices.

Layouts, tried in this order (`path` is the folder):
- split folders: `train/images/`, `train/masks/`, `val/images/`, `val/masks/`;
- one pair of folders, `images/` and `masks/`, split by `train.txt` and `val.txt` (one file stem a
  line) when both are there, otherwise by `DataConfig.val_split` (a seeded random fraction);
- PASCAL VOC: `JPEGImages/`, `SegmentationClass/` (its palette PNGs) and
  `ImageSets/Segmentation/train.txt` + `val.txt`, or `val_split` without those lists.
Each image `<stem>.<any image extension>` has the mask `<stem>.png` of the same size: one 8-bit
class index per pixel (mode L, or P as VOC stores them, whose palette only colours the indices).
Label 255 (`IGNORE_INDEX`) is "not labelled": no loss and no metric counts those pixels.

Class names: `classes.txt` in the folder (line i names class i); else VOC's 21 classes for the VOC
layout; else the numbers 0..K-1, K - 1 the largest label in the masks (all of them are read once).

Images and masks take the same geometric transform (`xception.data.transforms.SegmentationPair`):
the mask by nearest neighbour, so it keeps its class indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from xception.data.config import IGNORE_INDEX, DataConfig
from xception.data.datasets import Datasets
from xception.data.images import UnreadableImageError, load_image
from xception.data.split import stratified_split
from xception.data.transforms import SegmentationPair

log = logging.getLogger(__name__)

CLASSES_FILE = "classes.txt"
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
LAYOUTS = ("{root}/train/{{images,masks}}/ and {root}/val/{{images,masks}}/; or {root}/images/ and {root}/masks/ "
           "with train.txt and val.txt (or --val-split); or PASCAL VOC's JPEGImages/, SegmentationClass/ and "
           "ImageSets/Segmentation/")
MASK_MODES = ("L", "P", "1", "I;16", "I;16L", "I;16B", "I")

Pair = tuple[str, str]  # (image file, mask file)


@dataclass(frozen=True)
class Layout:
    """Where one layout keeps its images, masks and split lists, relative to the root."""

    images: str
    masks: str
    lists: tuple[str, str] | None  # (train list, val list), one stem a line
    voc: bool = False


SIMPLE = Layout("images", "masks", ("train.txt", "val.txt"))
VOC = Layout("JPEGImages", "SegmentationClass", ("ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt"),
             voc=True)


def read_mask(path: str | Path) -> np.ndarray:
    """uint8 (H, W) class indices of a mask PNG, upright (its EXIF orientation applied, like images).
    Raises UnreadableImageError naming the file when it cannot be read or holds colours or indices
    above 255 rather than class indices."""
    try:
        with Image.open(path) as mask:
            mask.load()
            mask = ImageOps.exif_transpose(mask)
    except FileNotFoundError:
        raise UnreadableImageError(str(path), "the mask does not exist", "give every image a mask") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(str(path), f"{type(error).__name__}: {error}") from None
    if mask.mode not in MASK_MODES:
        raise UnreadableImageError(str(path), f"the mask is {mask.mode}, colours rather than class indices",
                                   "save one class index per pixel (8-bit grayscale or palette PNG)")
    labels = np.asarray(mask)
    if labels.max(initial=0) > 255:
        raise UnreadableImageError(str(path), f"the mask holds label {labels.max()}, above 255",
                                   "use 8-bit class indices (255 = not labelled)")
    return labels.astype(np.uint8)


class SegmentationFiles(Dataset):
    """Items (image float32 (C, S, S) in [-1, 1], mask int64 (S, S) in 0..num_classes - 1 or 255)
    of `samples`, (image file, mask file) pairs, prepared by `pair`."""

    def __init__(self, samples: list[Pair], *, pair: SegmentationPair, in_channels: int, num_classes: int) -> None:
        self.samples, self.pair, self.in_channels, self.num_classes = samples, pair, in_channels, num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image_path, mask_path = self.samples[index]
        image, mask = load_image(image_path, in_channels=self.in_channels), read_mask(mask_path)
        if mask.shape != (image.height, image.width):
            raise UnreadableImageError(mask_path, f"the mask is {mask.shape[1]}x{mask.shape[0]} px, its image "
                                       f"{image_path} {image.width}x{image.height}", "make them the same size")
        labels = np.unique(mask)
        wrong = labels[(labels >= self.num_classes) & (labels != IGNORE_INDEX)]
        if wrong.size:
            raise UnreadableImageError(mask_path, f"label {int(wrong[0])} is not one of the {self.num_classes} "
                                       f"classes (nor {IGNORE_INDEX}, not labelled)", f"fix the mask or {CLASSES_FILE}")
        return self.pair(image, mask)


def image_files(directory: Path) -> dict[str, Path]:
    """{stem: image file} of `directory`, in sorted order; ValueError for two images of one stem."""
    found: dict[str, Path] = {}
    for file in sorted(directory.iterdir()):
        if file.is_file() and file.suffix.lower() in IMG_EXTENSIONS:
            if file.stem in found:
                raise ValueError(f"{directory}: {found[file.stem].name} and {file.name} have the same stem; "
                                 "masks are matched to images by stem, so keep one")
            found[file.stem] = file
    return found


def pairs(root: Path, images: str, masks: str, stems: list[str] | None) -> list[Pair]:
    """(image, mask) files of `stems` (all images of `images/` when None), in sorted stem order."""
    image_dir, mask_dir = root / images, root / masks
    for directory in (image_dir, mask_dir):
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} does not exist: a segfolder dataset is laid out as "
                                    f"{LAYOUTS.format(root=root)}")
    found = image_files(image_dir)
    stems = sorted(found) if stems is None else stems
    missing_images = [stem for stem in stems if stem not in found]
    missing_masks = [stem for stem in stems if stem in found and not (mask_dir / f"{stem}.png").is_file()]
    if missing_images or missing_masks:
        raise FileNotFoundError(
            f"{root}: {len(missing_images)} listed image(s) missing from {image_dir} (first: {missing_images[:3]}), "
            f"{len(missing_masks)} image(s) without a mask <stem>.png in {mask_dir} (first: {missing_masks[:3]})")
    if not stems:
        raise FileNotFoundError(f"{image_dir} holds no image (extensions {', '.join(IMG_EXTENSIONS)})")
    return [(str(found[stem]), str(mask_dir / f"{stem}.png")) for stem in stems]


def read_stems(path: Path) -> list[str]:
    """The stems of a split list, one a line (blank lines skipped; VOC's lists hold stems only)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def find_splits(root: Path, config: DataConfig) -> tuple[list[Pair], list[Pair], bool]:
    """(training pairs, validation pairs, whether the layout is VOC's) of `root`."""
    if (root / "train" / "images").is_dir():
        if config.val_split is not None:
            raise ValueError(f"{root} holds train/ and val/ already: leave out --val-split")
        return pairs(root / "train", "images", "masks", None), pairs(root / "val", "images", "masks", None), False
    layout = layout_of(root)
    lists = [root / name for name in layout.lists]
    if all(file.is_file() for file in lists):
        if config.val_split is not None:
            raise ValueError(f"{root} has the split lists {lists[0].name} and {lists[1].name}: leave out --val-split")
        train, val = (pairs(root, layout.images, layout.masks, read_stems(file)) for file in lists)
        return train, val, layout.voc
    if any(file.is_file() for file in lists):
        raise FileNotFoundError(f"{root}: {lists[0]} and {lists[1]} go together; add the missing one, or delete "
                                "both and pass --val-split")
    if config.val_split is None:
        raise ValueError(f"{root} has no validation split (no {lists[0].name}/{lists[1].name} lists, no val/ folder): "
                         "pass --val-split F to hold out a fraction of the images")
    everything = all_pairs(root, layout)
    # One stratum: an image has no single class, so the split is a seeded random fraction.
    train_indices, val_indices = stratified_split([0] * len(everything), fraction=config.val_split, seed=config.seed)
    return [everything[i] for i in train_indices], [everything[i] for i in val_indices], layout.voc


def layout_of(root: Path) -> Layout:
    """VOC's layout where `root` has its JPEGImages/, else images/ + masks/."""
    return VOC if (root / VOC.images).is_dir() else SIMPLE


def all_pairs(root: Path, layout: Layout) -> list[Pair]:
    """Every (image, mask) of `root` in `layout` (VOC's: those of its masks), whatever its split lists say."""
    if layout.voc:
        return pairs(root, VOC.images, VOC.masks, mask_stems(root))
    return pairs(root, layout.images, layout.masks, None)


def mask_stems(root: Path) -> list[str]:
    """The stems of VOC's masks (it has many more JPEGImages than SegmentationClass masks)."""
    return sorted(file.stem for file in (root / VOC.masks).glob("*.png"))


def class_names(root: Path, voc: bool, samples: list[Pair]) -> list[str]:
    """`classes.txt`'s names, VOC's for its layout, or the numbers up to the largest label of the masks."""
    listed = root / CLASSES_FILE
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        if not 1 <= len(names) <= IGNORE_INDEX:
            raise ValueError(f"{listed} names {len(names)} classes; a mask holds 1 to {IGNORE_INDEX} of them")
        return names
    if voc:
        return list(VOC_CLASSES)
    log.info("no %s in %s: reading %d masks for the number of classes", CLASSES_FILE, root, len(samples))
    largest = 0
    for _, mask in samples:
        labels = np.unique(read_mask(mask))
        largest = max(largest, int(labels[labels != IGNORE_INDEX].max(initial=0)))
    return [str(label) for label in range(largest + 1)]


def build_segfolder(config: DataConfig) -> Datasets:
    """The training and validation (image, mask) items of `config.path` (see the module docstring)."""
    root = Path(config.path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: a segfolder dataset is laid out as {LAYOUTS.format(root=root)}")
    train, val, voc = find_splits(root, config)
    names = class_names(root, voc, train + val)
    splits = {split: SegmentationFiles(samples, pair=SegmentationPair(config, training=split == "train"),
                                       in_channels=config.in_channels, num_classes=len(names))
              for split, samples in (("train", train), ("val", val))}
    return Datasets(train=splits["train"], val=splits["val"], num_classes=len(names), class_names=names,
                    multilabel=False, class_weights=None)


def build_whole_segfolder(config: DataConfig) -> Datasets:
    """Every (image, mask) of `config.path` (`images/` and `masks/`, or VOC's layout) as the validation
    split and an empty training split: a test folder for `xception eval --split all`."""
    root = Path(config.path)
    if not root.is_dir() or (root / "train" / "images").is_dir():
        raise FileNotFoundError(f"{root} is not one folder of images and masks: --split all evaluates {root}/images/ "
                                f"with {root}/masks/ (or VOC's JPEGImages/ with SegmentationClass/)")
    layout = layout_of(root)
    everything = all_pairs(root, layout)
    names = class_names(root, layout.voc, everything)
    pair = SegmentationPair(config, training=False)
    val, train = (SegmentationFiles(samples, pair=pair, in_channels=config.in_channels, num_classes=len(names))
                  for samples in (everything, []))
    return Datasets(train=train, val=val, num_classes=len(names), class_names=names, multilabel=False,
                    class_weights=None)
