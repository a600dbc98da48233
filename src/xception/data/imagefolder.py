"""An ImageNet-style directory: `train/<class>/<image>` and `val/<class>/<image>`, on torchvision's ImageFolder."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.images import ImageLoader
from xception.data.transforms import photo_transforms

LAYOUT = (
    "{root}/train/<class>/<image> and {root}/val/<class>/<image> (one folder per class, same names in both)"
)


def open_split(root: Path, split: str, *, transform, in_channels: int) -> ImageFolder:
    """torchvision's ImageFolder over `root/split`, with errors that name the path and the expected layout."""
    directory = root / split
    layout = LAYOUT.format(root=root)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} does not exist: an image folder dataset is laid out as {layout}"
        )
    if not any(child.is_dir() for child in directory.iterdir()):
        raise FileNotFoundError(f"{directory} has no class folders: expected {layout}")
    try:
        return ImageFolder(str(directory), transform=transform, loader=ImageLoader(in_channels=in_channels))
    except FileNotFoundError as error:  # class folders without a single image file
        raise FileNotFoundError(
            f"{directory}: {error}. Images need one of the extensions {', '.join(IMG_EXTENSIONS)}; expected {layout}"
        ) from None


def build_imagefolder(config: DataConfig) -> Datasets:
    """The `train` and `val` splits of `config.path`, with the Inception crop (when augmenting) and the
    evaluation centre crop. Targets are class indices in the sorted order of the folder names."""
    root = Path(config.path)
    transforms = photo_transforms(config)
    train = open_split(root, "train", transform=transforms.train, in_channels=config.in_channels)
    val = open_split(root, "val", transform=transforms.val, in_channels=config.in_channels)
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise ValueError(
            f"{root}: train and val must have the same class folders (only in train: {only_train[:5]}, "
            f"only in val: {only_val[:5]}); make the class folders of the two splits the same"
        )
    return Datasets(
        train=train,
        val=val,
        num_classes=len(train.classes),
        class_names=list(train.classes),
        multilabel=False,
        class_weights=None,
    )
