"""Folders of class folders, on torchvision's ImageFolder: an ImageNet-style `train/<class>/<image>` and
`val/<class>/<image>`, or one `<class>/<image>` folder whose validation split is cut by
`DataConfig.val_split` (`xception.data.split`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from xception.data.config import DataConfig
from xception.data.datasets import Datasets
from xception.data.groups import groups_from_manifest
from xception.data.images import ImageLoader
from xception.data.split import grouped_split, stratified_split
from xception.data.transforms import photo_transforms
from xception.data.video_frames import MANIFEST as GROUP_MANIFEST  # the groups of `val_group`

LAYOUT = (
    "{root}/train/<class>/<image> and {root}/val/<class>/<image> (one folder per class, same names in both), "
    "or {root}/<class>/<image> with --val-split F"
)
SPLIT_LAYOUT = "{root}/<class>/<image> (one folder per class; --val-split holds out a fraction of each)"


def open_classes(directory: Path, *, layout: str, transform, in_channels: int) -> ImageFolder:
    """torchvision's ImageFolder over `directory`, with errors that name the path and the expected `layout`."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist: an image folder dataset is laid out as {layout}")
    if not any(child.is_dir() for child in directory.iterdir()):
        raise FileNotFoundError(f"{directory} has no class folders: expected {layout}")
    try:
        return ImageFolder(str(directory), transform=transform, loader=ImageLoader(in_channels=in_channels))
    except FileNotFoundError as error:  # class folders without a single image file
        raise FileNotFoundError(
            f"{directory}: {error}. Images need one of the extensions {', '.join(IMG_EXTENSIONS)}; expected {layout}"
        ) from None


def open_split(root: Path, split: str, *, transform, in_channels: int) -> ImageFolder:
    """`open_classes` of `root/split` in the train/ + val/ layout."""
    return open_classes(root / split, layout=LAYOUT.format(root=root), transform=transform, in_channels=in_channels)


class LabelledFiles(Dataset):
    """Items (transform(loader(path)), class index) of `samples`, a list of (path, class index) as
    ImageFolder's; `targets` are the class indices, in item order."""

    def __init__(self, samples: list[tuple[str, int]], *, transform: Callable, loader: Callable) -> None:
        self.samples, self.transform, self.loader = samples, transform, loader
        self.targets = [target for _, target in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        return self.transform(self.loader(path)), target


def build_imagefolder(config: DataConfig) -> Datasets:
    """The `train` and `val` splits of `config.path`, with the Inception crop (when augmenting) and the
    evaluation centre crop. Targets are class indices in the sorted order of the folder names."""
    root = Path(config.path)
    if config.val_split is not None:
        return build_split_imagefolder(config)
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


def build_split_imagefolder(config: DataConfig) -> Datasets:
    """One folder of class folders, `config.val_split` of each class held out for validation
    (`stratified_split` with `config.seed`; of whole groups with `config.val_group`, read from the
    folder's `GROUP_MANIFEST`)."""
    root = Path(config.path)
    if (root / "train").is_dir() and (root / "val").is_dir():
        raise ValueError(f"{root} holds train/ and val/ already: leave out --val-split to use them, or point "
                         "--data at one folder of class folders")
    transforms = photo_transforms(config)
    folder = open_classes(root, layout=SPLIT_LAYOUT.format(root=root), transform=None, in_channels=config.in_channels)
    if config.val_group is None:
        train_indices, val_indices = stratified_split(folder.targets, fraction=config.val_split, seed=config.seed,
                                                      names=folder.classes)
    else:
        groups = groups_from_manifest([path for path, _ in folder.samples], root / GROUP_MANIFEST, config.val_group)
        train_indices, val_indices = grouped_split(folder.targets, groups, fraction=config.val_split,
                                                   seed=config.seed, names=folder.classes)
    train, val = ([folder.samples[i] for i in indices] for indices in (train_indices, val_indices))
    return Datasets(
        train=LabelledFiles(train, transform=transforms.train, loader=folder.loader),
        val=LabelledFiles(val, transform=transforms.val, loader=folder.loader),
        num_classes=len(folder.classes),
        class_names=list(folder.classes),
        multilabel=False,
        class_weights=None,
    )


def build_whole_imagefolder(config: DataConfig) -> Datasets:
    """Every image of `config.path`, one folder of class folders, as the validation split and an
    empty training split: a test folder for `xception eval --split all`."""
    root = Path(config.path)
    folder = open_classes(root, layout=SPLIT_LAYOUT.format(root=root), transform=photo_transforms(config).val,
                          in_channels=config.in_channels)
    return Datasets(
        train=LabelledFiles([], transform=folder.transform, loader=folder.loader),
        val=folder,
        num_classes=len(folder.classes),
        class_names=list(folder.classes),
        multilabel=False,
        class_weights=None,
    )
