"""Multi-label manifests (JFT-style data): image paths with lists of labels, in JSONL or CSV.

A manifest directory holds, for each split (`train`, `val`), one of
  `<split>.jsonl`  one JSON object per line: {"path": "images/0001.png", "labels": ["Bag", "Sandal"]}
  `<split>.csv`    a header `path,labels`, then one row per image, labels joined by "|": images/0001.png,Bag|Sandal
and optionally `classes.txt` (one class name per line, the target order; default: the sorted labels
seen in the manifests) and `class_weights.json` ({class name: weight}, for MAP@100; default: the
label frequencies of the training split, FastEval14k's weighting). Image paths are relative to the
directory (or absolute). An image may have no label (an all-zero target).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset

from xception.data.class_weights import frequency_class_weights, read_class_weights, write_class_weights
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.images import ImageLoader, to_pil_image
from xception.data.transforms import photo_transforms

LABEL_SEPARATOR = "|"
CLASSES_FILE = "classes.txt"
CLASS_WEIGHTS_FILE = "class_weights.json"
SPLITS = ("train", "val")

Row = tuple[str, list[str]]  # (image path as written, label names)


def find_manifest(directory: Path, split: str) -> Path:
    """`directory/<split>.jsonl` or `<split>.csv`; FileNotFoundError naming both when neither exists."""
    found = [p for p in (directory / f"{split}.jsonl", directory / f"{split}.csv") if p.is_file()]
    if not found:
        raise FileNotFoundError(
            f"{directory} has no {split}.jsonl or {split}.csv: a multilabel dataset directory holds one "
            "manifest per split (see xception.data.manifest for the format)"
        )
    if len(found) > 1:
        raise ValueError(f"{directory} has both {split}.jsonl and {split}.csv: keep one")
    return found[0]


def read_manifest(path: str | Path) -> list[Row]:
    """The (path, labels) rows of a JSONL or CSV manifest; ValueError naming file and line when malformed."""
    path = Path(path)
    rows: list[Row] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append((str(record["path"]), [str(label) for label in record["labels"]]))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(
                    f'{path}:{number}: expected {{"path": ..., "labels": [...]}}, got {line[:80]!r} ({error})'
                ) from None
    elif path.suffix == ".csv":
        with open(path, newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header != ["path", "labels"]:
                raise ValueError(f"{path}:1: the header must be 'path,labels', got {header}")
            for number, record in enumerate(reader, start=2):
                if len(record) != 2:
                    raise ValueError(f"{path}:{number}: expected 2 columns (path, labels), got {len(record)}")
                labels = [label for label in record[1].split(LABEL_SEPARATOR) if label]
                rows.append((record[0], labels))
    else:
        raise ValueError(f"{path}: a manifest ends in .jsonl or .csv")
    return rows


def write_manifest(path: str | Path, rows: Iterable[Row]) -> None:
    """Write rows as JSONL or CSV, by the suffix of `path` (the inverse of `read_manifest`)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"path": p, "labels": labels}) + "\n" for p, labels in rows))
    elif path.suffix == ".csv":
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "labels"])
            for image_path, labels in rows:
                if any(LABEL_SEPARATOR in label for label in labels):
                    raise ValueError(f"label in {labels} contains {LABEL_SEPARATOR!r}: write JSONL instead")
                writer.writerow([image_path, LABEL_SEPARATOR.join(labels)])
    else:
        raise ValueError(f"{path}: a manifest ends in .jsonl or .csv")


class ManifestImages(Dataset):
    """Items (image float32 (C, S, S) in [-1, 1], multi-hot float32 (num_classes,)) of manifest rows."""

    def __init__(
        self, paths: list[Path], labels: list[list[int]], *, num_classes: int, transform, in_channels: int
    ):
        self.paths = paths
        self.labels = labels
        self.num_classes = num_classes
        self.transform = transform
        self.loader = ImageLoader(in_channels=in_channels)

    def __len__(self) -> int:
        return len(self.paths)

    def target(self, index: int) -> torch.Tensor:
        target = torch.zeros(self.num_classes, dtype=torch.float32)
        target[self.labels[index]] = 1.0
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.loader(self.paths[index])), self.target(index)


def build_multilabel(config: DataConfig) -> Datasets:
    """The `train` and `val` manifests of `config.path` (photo preprocessing, as the image folder)."""
    directory = Path(config.path)
    if not directory.is_dir():
        raise FileNotFoundError(f"multilabel dataset directory {directory} does not exist")
    manifests = {split: find_manifest(directory, split) for split in SPLITS}
    rows = {split: read_manifest(path) for split, path in manifests.items()}
    classes_file = directory / CLASSES_FILE
    if classes_file.is_file():
        class_names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
    else:
        class_names = sorted(
            {label for split_rows in rows.values() for _, labels in split_rows for label in labels}
        )
    if not class_names:
        raise ValueError(f"{directory}: no class names (no {CLASSES_FILE} and no labels in the manifests)")
    index = {name: i for i, name in enumerate(class_names)}
    labels = {}
    for split, split_rows in rows.items():
        if not split_rows:
            raise ValueError(f"{manifests[split]} lists no images")
        unknown = sorted({label for _, names in split_rows for label in names if label not in index})
        if unknown:
            raise ValueError(f"{manifests[split]} uses labels not in {classes_file}: {unknown[:5]}")
        labels[split] = [[index[label] for label in names] for _, names in split_rows]
    transforms = photo_transforms(config)
    splits = {
        split: ManifestImages(
            [directory / path for path, _ in rows[split]],
            labels[split],
            num_classes=len(class_names),
            transform=getattr(transforms, split),
            in_channels=config.in_channels,
        )
        for split in SPLITS
    }
    weights_path = (
        Path(config.class_weights_path) if config.class_weights_path else directory / CLASS_WEIGHTS_FILE
    )
    if config.class_weights_path or weights_path.is_file():
        class_weights = read_class_weights(weights_path, class_names)
    else:
        class_weights = frequency_class_weights(
            torch.stack([splits["train"].target(i) for i in range(len(splits["train"]))])
        )
    return Datasets(
        train=splits["train"],
        val=splits["val"],
        num_classes=len(class_names),
        class_names=class_names,
        multilabel=True,
        class_weights=class_weights,
    )


def write_multilabel_dataset(
    datasets: Datasets,
    directory: str | Path,
    *,
    manifest_format: Literal["jsonl", "csv"],
    batch_size: int = 256,
) -> Path:
    """Write `datasets` (map-style, multi-label) as a manifest directory that `build_multilabel` reads.

    Images go to `images/<split>/<index>.png` as 8-bit PNG (build `datasets` with augment=False, at the
    stored size, for an exact copy), then `<split>.<manifest_format>`, `classes.txt` and, when the
    datasets have class weights, `class_weights.json`. Returns the directory.
    """
    if not datasets.multilabel:
        raise ValueError("write_multilabel_dataset needs multi-label datasets (multi-hot targets)")
    directory = Path(directory)
    for split in SPLITS:
        (directory / "images" / split).mkdir(parents=True, exist_ok=True)
        rows: list[Row] = []
        loader = DataLoader(getattr(datasets, split), batch_size=batch_size, shuffle=False, num_workers=0)
        for images, targets in loader:
            for image, target in zip(images, targets, strict=True):
                relative = f"images/{split}/{len(rows):07d}.png"
                to_pil_image(image).save(directory / relative)
                rows.append((relative, [datasets.class_names[i] for i in target.nonzero()[:, 0].tolist()]))
        write_manifest(directory / f"{split}.{manifest_format}", rows)
    (directory / CLASSES_FILE).write_text("".join(f"{name}\n" for name in datasets.class_names))
    if datasets.class_weights is not None:
        write_class_weights(directory / CLASS_WEIGHTS_FILE, datasets.class_names, datasets.class_weights)
    return directory
