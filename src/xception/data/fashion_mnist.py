"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) from its four IDX files, kept in memory as uint8.

Where the files are looked for, in order: the directory given (also its torchvision layout
`FashionMNIST/raw`), the directory of Debian's `dataset-fashion-mnist` package, this library's cache
(where a download goes); a download from torchvision's official mirror happens only when asked for.
`obtain_fashion_mnist` (what `make demo` and `make data` use) also installs the Debian package
where apt-get is usable, then falls back to the download.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Literal

import torch

from xception.data.batch_transforms import TensorPipeline
from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.idx import read_idx
from xception.data.in_memory import InMemoryImages

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES: dict[str, tuple[str, str]] = {  # split -> (images, labels), each stored plain or as .gz
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SIZES: dict[str, int] = {"train": 60_000, "test": 10_000}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SOURCE_SIZE = (28, 28)


def cache_dir() -> Path:
    """Where a download goes: $XDG_CACHE_HOME/xception/fashion-mnist (default ~/.cache/...)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xception" / "fashion-mnist"


def find_file(directory: Path, name: str) -> Path | None:
    """`directory/name`, or `directory/name.gz`, whichever exists first (None when neither)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def holds_fashion_mnist(directory: Path) -> bool:
    """Whether all four IDX files are in `directory`."""
    return all(find_file(directory, name) is not None for pair in FILES.values() for name in pair)


def download_fashion_mnist(directory: Path) -> None:
    """Fetch the four .gz files from torchvision's official mirror into `directory`, checking their MD5."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import download_url

    directory.mkdir(parents=True, exist_ok=True)
    for filename, md5 in FashionMNIST.resources:
        if find_file(directory, filename.removesuffix(".gz")) is not None:
            continue
        errors = []
        for mirror in FashionMNIST.mirrors:
            try:
                download_url(f"{mirror}{filename}", root=str(directory), filename=filename, md5=md5)
                break
            except Exception as error:  # network errors come in many types; try the next mirror
                errors.append(f"{mirror}: {error}")
        else:
            raise FileNotFoundError(
                f"could not download Fashion-MNIST's {filename} into {directory} ({'; '.join(errors)}). "
                f"Install Debian's package (apt-get install dataset-fashion-mnist, files in {DEBIAN_DIR}) "
                "or copy the four IDX files there by hand and pass that directory as the data path."
            )


def ensure_fashion_mnist(path: str | Path | None, download: bool) -> Path:
    """The directory holding Fashion-MNIST's four IDX files, found (or downloaded) in the documented order.

    Raises FileNotFoundError saying where it looked and what to do when the files are nowhere and
    `download` is False.
    """
    needed = ", ".join(f"{name}[.gz]" for pair in FILES.values() for name in pair)
    if path is not None:
        path = Path(path)
        for candidate in (path, path / "FashionMNIST" / "raw"):
            if holds_fashion_mnist(candidate):
                return candidate
        if download:
            log.info("downloading Fashion-MNIST into %s", path)
            download_fashion_mnist(path)
            return path
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {path}: that directory must hold {needed}. "
            "Point the data path at the directory that has them, or ask for the download (download=True)."
        )
    for candidate in (DEBIAN_DIR, cache_dir()):
        if holds_fashion_mnist(candidate):
            return candidate
    if download:
        log.info("downloading Fashion-MNIST into %s", cache_dir())
        download_fashion_mnist(cache_dir())
        return cache_dir()
    raise FileNotFoundError(
        f"Fashion-MNIST was not found in {DEBIAN_DIR} nor in {cache_dir()}. Either install it "
        "(sudo apt-get install dataset-fashion-mnist), or ask for the download from torchvision's "
        f"mirror (download=True), or pass a data path to a directory holding {needed}."
    )


def obtain_fashion_mnist(path: str | None = None) -> Path:
    """The Fashion-MNIST directory: `path`, Debian's package (installed now when apt-get is usable),
    or the official download; else a FileNotFoundError that says exactly what to do."""
    try:
        return ensure_fashion_mnist(path, download=False)
    except FileNotFoundError:
        if path is not None:
            raise
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        log.info("installing Fashion-MNIST with apt-get install %s", DEBIAN_PACKAGE)
        for command in (["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if command[1] == "install" and done.returncode == 0:
                break
        try:
            return ensure_fashion_mnist(None, download=False)
        except FileNotFoundError:
            log.info("apt-get could not install %s; trying the official download", DEBIAN_PACKAGE)
    try:
        return ensure_fashion_mnist(None, download=True)
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(
            f"could not obtain Fashion-MNIST ({error}). Do one of: `sudo apt-get install {DEBIAN_PACKAGE}` "
            f"(files in {DEBIAN_DIR}); or download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
            "https://github.com/zalandoresearch/fashion-mnist (data/fashion) into a directory DIR and pass "
            "it as the data path (`xception demo --data DIR`, `xception data fetch --data DIR`)."
        ) from None


def load_fashion_mnist(
    directory: str | Path, split: Literal["train", "test"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of one split; N = 60000 (train) or 10000 (test).

    Black background, white garments, as stored. Raises ValueError naming the file when a file is
    corrupt or the two files of the split disagree.
    """
    directory = Path(directory)
    paths = [find_file(directory, name) for name in FILES[split]]
    if None in paths:
        raise FileNotFoundError(f"{directory} lacks {' or '.join(FILES[split])} (plain or .gz)")
    images, labels = (read_idx(p) for p in paths)
    if images.shape[1:] != SOURCE_SIZE or images.shape[0] != SIZES[split] or labels.shape != (SIZES[split],):
        raise ValueError(
            f"Fashion-MNIST {split} files in {directory} hold images {tuple(images.shape)} and labels "
            f"{tuple(labels.shape)}; expected ({SIZES[split]}, 28, 28) and ({SIZES[split]},). Fetch them again."
        )
    if int(labels.max()) >= len(CLASSES):
        raise ValueError(f"{paths[1]} has label {int(labels.max())}; Fashion-MNIST has 10 classes (0-9)")
    return images, labels.long()


def build_fashion_mnist(config: DataConfig) -> Datasets:
    """Fashion-MNIST's official 60000 training and 10000 test images as train and val."""
    directory = ensure_fashion_mnist(config.path, config.download)
    splits = {}
    for split, augment in (("train", config.augment), ("test", False)):
        images, labels = load_fashion_mnist(directory, split)
        pipeline = TensorPipeline(
            image_size=config.image_size,
            in_channels=config.in_channels,
            augment=augment,
            padding=config.crop_padding,
            erase_probability=config.erase_probability,
        )
        splits[split] = InMemoryImages(images, labels, pipeline=pipeline)
    return Datasets(
        train=splits["train"],
        val=splits["test"],
        num_classes=len(CLASSES),
        class_names=list(CLASSES),
        multilabel=False,
        class_weights=None,
    )
