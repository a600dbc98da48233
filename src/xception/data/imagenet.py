"""The ILSVRC 2012 validation set (50,000 images of ImageNet-1k's 1000 classes), for evaluating
published weights, in the two layouts people have:

- one folder per synset: `DIR/n01440764/ILSVRC2012_val_00000293.JPEG`, ... (what torchvision's
  `ImageNet` and most training set-ups make; any subset of the 1000 folders);
- the flat folder of the official archive, `DIR/ILSVRC2012_val_00000001.JPEG` ... `_00050000.JPEG`,
  with a ground-truth file: the devkit's `ILSVRC2012_validation_ground_truth.txt` (one ILSVRC2012_ID
  per line; its `meta.mat` beside it maps those ids to synsets, read with scipy),
  `imagenet_2012_validation_synset_labels.txt` (one synset per line, TensorFlow's), Kaggle's
  `LOC_val_solution.csv`, or Caffe's `val.txt` (`FILE INDEX`, the index in sorted-synset order).
  Line n of a one-per-line file is image number n, so a subset of the images works too.

`DIR` may also be the folder above `val/`. Targets are the class indices of published weights (the
sorted synset order, `xception.imagenet_classes`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from xception.data.config import DataConfig
from xception.data.images import ImageLoader
from xception.data.transforms import photo_transforms
from xception.imagenet_classes import IMAGENET_WNIDS

GROUND_TRUTH_NAMES = (
    "ILSVRC2012_validation_ground_truth.txt",
    "imagenet_2012_validation_synset_labels.txt",
    "LOC_val_solution.csv",
    "val.txt",
)
_WNID = re.compile(r"n\d{8}")
_IMAGE_NUMBER = re.compile(r"ILSVRC2012_val_(\d{8})")
CLASS_INDEX = {wnid: index for index, wnid in enumerate(IMAGENET_WNIDS)}


class LabelledImages(Dataset):
    """(image file, class index) pairs -> (transform(decoded image), class index)."""

    def __init__(self, samples: list[tuple[Path, int]], *, transform, in_channels: int) -> None:
        self.samples, self.transform, self.load = samples, transform, ImageLoader(in_channels=in_channels)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        return self.transform(self.load(path)), target


def open_imagenet_val(config: DataConfig) -> LabelledImages:
    """The validation images under `config.path` in either layout, prepared by the evaluation
    transform of `config` (resize, centre crop, [-1, 1])."""
    directory = _val_directory(Path(config.path))
    transform = photo_transforms(config).val
    synsets = sorted(child for child in directory.iterdir() if child.is_dir() and _WNID.fullmatch(child.name))
    if synsets:
        samples = [(image, CLASS_INDEX[folder.name]) for folder in synsets if folder.name in CLASS_INDEX
                   for image in _images(folder)]
        unknown = [folder.name for folder in synsets if folder.name not in CLASS_INDEX]
        if unknown:
            raise ValueError(f"{directory}: {unknown[0]} is not one of ImageNet-1k's 1000 synsets "
                             f"({len(unknown)} such folders); remove them")
    else:
        images = _images(directory)
        if not images:
            raise FileNotFoundError(
                f"{directory} holds neither synset folders (n01440764/, ...) nor images; give the ImageNet "
                "validation folder in one of the two layouts of docs/weights.md")
        truth = Path(config.ground_truth) if config.ground_truth else _find_ground_truth(directory)
        labels = read_ground_truth(truth)
        samples = [(image, _label_of(image, labels, truth)) for image in images]
    if not samples:
        raise FileNotFoundError(f"{directory}: the synset folders hold no images ({', '.join(IMG_EXTENSIONS)})")
    return LabelledImages(samples, transform=transform, in_channels=config.in_channels)


def read_ground_truth(path: Path) -> dict[str, int]:
    """Image key -> class index from any of the ground-truth files the module docstring lists. Keys
    are image numbers ("00000001") for one-label-per-line files, else file stems."""
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file {path} does not exist; pass it with --ground-truth")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return {row["ImageId"]: _index(row["PredictionString"].split()[0], path) for row in csv.DictReader(f)}
    if all(len(tokens) == 2 for tokens in lines):  # Caffe's val.txt: FILE INDEX
        return {Path(name).stem: _index(label, path, numeric="sorted") for name, label in lines}
    if not all(len(tokens) == 1 for tokens in lines):
        raise ValueError(f"{path}: expected one label per line, 'FILE LABEL' lines, or Kaggle's CSV")
    tokens = [tokens[0] for tokens in lines]
    if all(_WNID.fullmatch(token) for token in tokens):
        return {f"{n:08d}": _index(token, path) for n, token in enumerate(tokens, start=1)}
    ids = _devkit_ids(path)
    return {f"{n:08d}": _index(ids.get(token, token), path) for n, token in enumerate(tokens, start=1)}


def _devkit_ids(path: Path) -> dict[str, str]:
    """The devkit's ILSVRC2012_ID -> synset, from `meta.mat` beside the ground-truth file."""
    meta = path.parent / "meta.mat"
    if not meta.is_file():
        raise FileNotFoundError(
            f"{path} holds the devkit's ILSVRC2012_IDs, which {meta} maps to synsets; put the devkit's "
            "meta.mat there (ILSVRC2012_devkit_t12/data/) or use a file of synsets")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValueError(f"reading {meta} needs scipy: pip install scipy") from None
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    return {str(int(row["ILSVRC2012_ID"])): str(row["WNID"]) for row in synsets if int(row["num_children"]) == 0}


def _index(label: str, path: Path, *, numeric: str = "") -> int:
    if label in CLASS_INDEX:
        return CLASS_INDEX[label]
    if numeric == "sorted" and label.isdigit() and 0 <= int(label) < len(IMAGENET_WNIDS):
        return int(label)
    raise ValueError(f"{path}: label {label!r} is not an ImageNet-1k synset (n01440764 ...)")


def _label_of(image: Path, labels: dict[str, int], truth: Path) -> int:
    number = _IMAGE_NUMBER.search(image.name)
    for key in ((number.group(1),) if number else ()) + (image.stem,):
        if key in labels:
            return labels[key]
    raise ValueError(f"{truth} has no label for {image.name}; is it the ground truth of these images?")


def _find_ground_truth(directory: Path) -> Path:
    places = [directory, directory.parent, directory.parent / "ILSVRC2012_devkit_t12" / "data"]
    for place in places:
        for name in GROUND_TRUTH_NAMES:
            if (place / name).is_file():
                return place / name
    raise FileNotFoundError(
        f"{directory} is a flat folder of images but no ground-truth file was found in {places[0]} or above "
        f"({', '.join(GROUND_TRUTH_NAMES)}); pass one with --ground-truth")


def _val_directory(root: Path) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet validation folder {root} does not exist")
    nested = root / "val"
    return nested if nested.is_dir() and not _images(root) else root


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
