"""The ImageNet-style folder path end to end, on real photographs from scikit-image."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from xception.data import DataConfig, build_datasets
from xception.data.images import UnreadableImageError, load_image
from xception.data.photo_eval import PhotoEvalInput
from xception.data.prediction import prediction_transform
from xception.description import Preprocessing

skimage_data = pytest.importorskip("skimage.data")

# class -> (train photos, val photo): real photographs bundled with scikit-image.
PHOTOS = {
    "cat": (("chelsea", "cat"), "chelsea"),
    "coffee": (("coffee", "coffee"), "coffee"),
    "space": (("astronaut", "rocket"), "hubble_deep_field"),
}


def save_photo(path, name: str, *, size: int, rotate: bool) -> None:
    image = Image.fromarray(getattr(skimage_data, name)())
    image.thumbnail((size, size))
    if rotate:  # portrait orientation, so both aspect ratios are exercised
        image = image.transpose(Image.Transpose.ROTATE_90)
    image.save(path)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for class_name, (train_names, val_name) in PHOTOS.items():
        for split in ("train", "val"):
            (root / split / class_name).mkdir(parents=True)
        for i, name in enumerate(train_names):
            save_photo(
                root / "train" / class_name / f"{name}_{i}.jpg", name, size=180 + 40 * i, rotate=i == 1
            )
        save_photo(root / "val" / class_name / f"{val_name}.png", val_name, size=160, rotate=False)
    return root


def config(root, **overrides):
    return DataConfig(**{"source": "imagefolder", "path": str(root), "image_size": 64, **overrides})


def test_imagefolder_end_to_end_shapes_ranges_and_targets(photo_folder):
    torch.manual_seed(0)
    datasets = build_datasets(config(photo_folder))
    assert datasets.class_names == ["cat", "coffee", "space"] and datasets.num_classes == 3
    assert (len(datasets.train), len(datasets.val)) == (6, 3) and not datasets.multilabel
    images, targets = next(iter(DataLoader(datasets.train, batch_size=6, num_workers=0)))
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.float32
    assert targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert images.min() >= -1.0 and images.max() <= 1.0
    for image, _ in datasets.val:
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert image.max() - image.min() > 1.0  # a whole photograph, not a constant: the range is used


def test_imagefolder_eval_crop_matches_pil_resize_and_centre_crop(photo_folder):
    datasets_config = config(photo_folder, image_size=56, crop_fraction=0.875)
    datasets = build_datasets(datasets_config)
    path = photo_folder / "val" / "coffee" / "coffee.png"
    photo = Image.open(path).convert("RGB")
    resized_short = math.floor(56 / 0.875)  # 64
    # The short side becomes 64, the long side int(64 * long / short), as v2.Resize documents.
    width, height = photo.size
    short, long = min(width, height), max(width, height)
    new_long = int(resized_short * long / short)
    new_size = (new_long, resized_short) if width >= height else (resized_short, new_long)
    resized = photo.resize(new_size, Image.Resampling.BILINEAR)
    # An odd margin (95 - 56 = 39) is split with the extra pixel on the left: round(19.5) = 20.
    left, top = round((resized.width - 56) / 2), round((resized.height - 56) / 2)
    expected = np.asarray(resized.crop((left, top, left + 56, top + 56)), dtype=np.float64) / 127.5 - 1
    got = datasets.val[1][0].permute(1, 2, 0).double().numpy()
    assert got.shape == expected.shape == (56, 56, 3)
    # torchvision's antialiased bilinear resize of a uint8 tensor follows PIL's to a level of 255.
    assert np.abs(got - expected).max() <= 1 / 127.5 + 1e-6
    # What `xception predict` does to one image file is what the evaluation did to it.
    prepare = prediction_transform(Preprocessing.of_data(dataclasses.asdict(datasets_config)), in_channels=3)
    assert torch.equal(prepare(load_image(path, in_channels=3)), datasets.val[1][0])


def coordinate_image(size: int) -> Image.Image:
    """Red = column, green = row: the crop box can be read back from the corners of the output."""
    column, row = np.meshgrid(np.arange(size), np.arange(size))
    return Image.fromarray(np.stack([column, row, np.zeros_like(row)], axis=-1).astype(np.uint8))


def test_imagefolder_training_crop_is_the_inception_crop(photo_folder):
    transform = build_datasets(config(photo_folder, image_size=32)).train.transform
    torch.manual_seed(0)
    areas, aspects, flips = [], [], 0
    for _ in range(200):
        out = (transform(coordinate_image(256)).double() + 1) * 127.5  # back to 0..255
        columns, rows = out[0], out[1]
        width = (columns[:, -1] - columns[:, 0]).abs().mean().item() * 32 / 31
        height = (rows[-1, :] - rows[0, :]).mean().item() * 32 / 31
        flips += bool(columns[0, 0] > columns[0, -1])
        areas.append(width * height / 256**2)
        aspects.append(width / height)
    # Small tolerances: the corners sit half a pixel inside the box and resizing blurs them.
    assert 0.08 * 0.85 <= min(areas) < 0.2 and 0.8 < max(areas) <= 1.02
    assert 3 / 4 * 0.9 <= min(aspects) < 0.85 and 1.2 < max(aspects) <= 4 / 3 * 1.1
    assert 60 < flips < 140


def test_imagefolder_without_augment_uses_the_eval_crop_for_training(photo_folder):
    unaugmented = config(photo_folder, augment=False)
    datasets = build_datasets(unaugmented)
    path, _ = datasets.train.samples[0]
    prepare = prediction_transform(Preprocessing.of_data(dataclasses.asdict(unaugmented)), in_channels=3)
    assert torch.equal(datasets.train[0][0], prepare(load_image(path, in_channels=3)))


def test_imagefolder_corrupt_image_names_the_file(tmp_path, photo_folder):
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        save_photo(tmp_path / split / "cat" / "good.jpg", "chelsea", size=100, rotate=False)
    (tmp_path / "train" / "cat" / "garbage.jpg").write_bytes(b"not an image at all")
    good = (tmp_path / "train" / "cat" / "good.jpg").read_bytes()
    (tmp_path / "train" / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    datasets = build_datasets(config(tmp_path))
    files = [path for path, _ in datasets.train.samples]
    for name in ("garbage.jpg", "truncated.jpg"):
        with pytest.raises(UnreadableImageError, match=f"cannot read image .*{name}"):
            datasets.train[files.index(str(tmp_path / "train" / "cat" / name))]


def test_imagefolder_missing_or_empty_split_names_path_and_layout(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    save_photo(tmp_path / "train" / "cat" / "a.jpg", "chelsea", size=64, rotate=False)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'val'} does not exist.*/train/<class>/<image>"):
        build_datasets(config(tmp_path))
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        build_datasets(config(tmp_path))
    (tmp_path / "val" / "cat").mkdir()
    with pytest.raises(FileNotFoundError, match="extensions"):
        build_datasets(config(tmp_path))


def test_imagefolder_grayscale_input(photo_folder):
    datasets = build_datasets(config(photo_folder, in_channels=1, image_size=48))
    assert datasets.train[0][0].shape == (1, 48, 48) and datasets.val[0][0].shape == (1, 48, 48)


def test_imagefolder_squash_eval_is_a_resize_of_the_whole_image(photo_folder):
    squash = config(photo_folder, image_size=48, resize="squash")
    datasets = build_datasets(squash)
    path = photo_folder / "val" / "coffee" / "coffee.png"
    photo = Image.open(path).convert("RGB")
    assert photo.width != photo.height  # the aspect ratio is given up, nothing is cut off
    expected = np.asarray(photo.resize((48, 48), Image.Resampling.BILINEAR), dtype=np.float64) / 127.5 - 1
    got = datasets.val[1][0].permute(1, 2, 0).double().numpy()
    assert np.abs(got - expected).max() <= 1 / 127.5 + 1e-6
    # What `xception predict` builds from the recorded preparation of the weights.
    prepare = PhotoEvalInput(image_size=48, in_channels=3, crop_fraction=squash.crop_fraction,
                             interpolation="bilinear", resize="squash")
    assert torch.equal(prepare(load_image(path, in_channels=3)), datasets.val[1][0])
    cropped = build_datasets(config(photo_folder, image_size=48)).val[1][0]
    assert (cropped - datasets.val[1][0]).abs().max() > 0.5


def test_imagefolder_squash_training_only_flips(photo_folder):
    datasets = build_datasets(config(photo_folder, image_size=32, resize="squash"))
    transform, evaluation = datasets.train.transform, datasets.val.transform
    picture = coordinate_image(256).resize((256, 160))  # not square
    whole = evaluation(picture)
    torch.manual_seed(0)
    outputs = [transform(picture) for _ in range(40)]
    plain = sum(torch.equal(out, whole) for out in outputs)
    flipped = sum(torch.equal(out, whole.flip(-1)) for out in outputs)
    assert plain + flipped == 40 and 5 < flipped < 35
