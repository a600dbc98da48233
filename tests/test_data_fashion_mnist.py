"""Fashion-MNIST: the IDX reader, the lookup order, and the parsed files against the dataset's known facts."""

import gzip
import shutil
import struct

import pytest
import torch

from xception.data import DataConfig, build_datasets
from xception.data import fashion_mnist as fm
from xception.data.idx import read_idx


def write_idx(path, array: bytes, shape: tuple[int, ...], compress: bool) -> None:
    data = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + array
    with (gzip.open if compress else open)(path, "wb") as file:
        file.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_hand_made_file(tmp_path, compress):
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, bytes(range(24)), (2, 3, 4), compress)
    assert torch.equal(read_idx(path), torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4))


def test_read_idx_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    write_idx(path, bytes(5), (6,), compress=False)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*truncated"):
        read_idx(path)


def fake_fashion_mnist(directory):
    for images, labels in fm.FILES.values():
        write_idx(directory / images, bytes(2 * 28 * 28), (2, 28, 28), compress=False)
        write_idx(directory / f"{labels}.gz", bytes(2), (2,), compress=True)


def test_ensure_fashion_mnist_uses_the_given_directory_first(tmp_path, monkeypatch):
    fake_fashion_mnist(tmp_path)
    assert fm.ensure_fashion_mnist(tmp_path, download=False) == tmp_path
    torchvision_layout = tmp_path / "tv" / "FashionMNIST" / "raw"
    torchvision_layout.mkdir(parents=True)
    fake_fashion_mnist(torchvision_layout)
    assert fm.ensure_fashion_mnist(tmp_path / "tv", download=False) == torchvision_layout


def test_ensure_fashion_mnist_missing_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=f"not in {tmp_path}.*train-images-idx3-ubyte.*download"):
        fm.ensure_fashion_mnist(tmp_path, download=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*download=True"):
        fm.ensure_fashion_mnist(None, download=False)


def test_ensure_fashion_mnist_falls_back_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "xception" / "fashion-mnist"
    cached.mkdir(parents=True)
    fake_fashion_mnist(cached)
    assert fm.ensure_fashion_mnist(None, download=False) == cached


def test_load_fashion_mnist_known_facts(fashion_mnist):
    train_images, train_labels = fm.load_fashion_mnist(fashion_mnist, "train")
    test_images, test_labels = fm.load_fashion_mnist(fashion_mnist, "test")
    assert train_images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    assert train_images.dtype == torch.uint8
    assert torch.equal(torch.bincount(train_labels), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(test_labels), torch.full((10,), 1000))
    assert train_labels[:4].tolist() == [9, 0, 0, 3]
    assert test_labels[:4].tolist() == [9, 2, 1, 1]


def test_read_idx_plain_equals_gzip_and_torchvision_reader(tmp_path, fashion_mnist):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name in fm.FILES["test"]:
        with gzip.open(fashion_mnist / f"{name}.gz", "rb") as source, open(tmp_path / name, "wb") as target:
            shutil.copyfileobj(source, target)
    images, labels = fm.FILES["test"]
    assert torch.equal(read_idx(tmp_path / images), read_image_file(str(tmp_path / images)))
    assert torch.equal(read_idx(tmp_path / labels).long(), read_label_file(str(tmp_path / labels)))
    assert torch.equal(read_idx(tmp_path / images), read_idx(fashion_mnist / f"{images}.gz"))


@pytest.mark.usefixtures("fashion_mnist")
def test_build_fashion_mnist_items_follow_the_data_contract():
    datasets = build_datasets(DataConfig(source="fashion_mnist", path=None, image_size=32, in_channels=3))
    assert (len(datasets.train), len(datasets.val)) == (60000, 10000)
    assert datasets.num_classes == 10 and datasets.class_names[9] == "Ankle boot" and not datasets.multilabel
    image, label = datasets.val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == 9
    assert -1.0 <= image.min() < image.max() <= 1.0
    native = build_datasets(DataConfig(source="fashion_mnist", path=None, image_size=28, in_channels=1))
    raw = native.val.images[0].double() / 127.5 - 1
    assert torch.allclose(native.val[0][0][0].double(), raw, atol=1e-6)


def test_long_preset_erases_training_images_only(fashion_mnist):
    from xception.train.demo import demo_config
    from xception.train.recipes import get_recipe

    config = demo_config(data_path=str(fashion_mnist), out_dir="unused", long=True, progress=False)
    assert get_recipe(config.recipe).epochs == 60 and config.model_overrides == {"width": 1.0}
    datasets = build_datasets(config.data)
    torch.manual_seed(0)
    indices = list(range(400))
    train = torch.stack([image for image, _ in datasets.train.__getitems__(indices)])
    # The same images through the training pipeline without erasing, with the same crop and flip draws.
    torch.manual_seed(0)
    no_erase = type(datasets.train.pipeline)(image_size=28, in_channels=1, augment=True, padding=2,
                                             erase_probability=0.0)
    plain = no_erase(datasets.train.images[torch.tensor(indices)])
    erased = (train != plain).flatten(1).any(1).float().mean().item()
    assert 0.4 < erased < 0.6  # probability 0.5, 400 images: 4 standard deviations are 0.1
    val = datasets.val[0][0]
    assert torch.allclose(val[0].double(), datasets.val.images[0].double() / 127.5 - 1, atol=1e-6)


def test_ensure_fashion_mnist_downloads_into_the_cache_only_when_asked(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    fetched = []

    def fake_download_url(url, root, filename, md5):  # stands in for the network
        fetched.append(url)
        stem = filename.removesuffix(".gz")
        shape = (2, 28, 28) if "images" in stem else (2,)
        write_idx(
            tmp_path / "cache" / "xception" / "fashion-mnist" / filename,
            bytes(2 * 28 * 28 if len(shape) == 3 else 2),
            shape,
            compress=True,
        )

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", fake_download_url)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError):
        fm.ensure_fashion_mnist(None, download=False)
    assert fetched == []
    assert fm.ensure_fashion_mnist(None, download=True) == tmp_path / "cache" / "xception" / "fashion-mnist"
    assert len(fetched) == 4 and all(url.startswith("http") and url.endswith(".gz") for url in fetched)
    assert fm.ensure_fashion_mnist(None, download=True) == fm.cache_dir() and len(fetched) == 4  # no refetch


@pytest.mark.usefixtures("fashion_mnist")
def test_build_datasets_subsets_are_fixed_by_the_seed():
    config = DataConfig(source="fashion_mnist", path=None, image_size=28, in_channels=1, augment=False,
                        train_examples=100, val_examples=50)
    first, again = build_datasets(config), build_datasets(config)
    other = build_datasets(DataConfig(**{**config.__dict__, "seed": 1}))
    assert (len(first.train), len(first.val)) == (100, 50)
    assert first.train.indices == again.train.indices != other.train.indices
    assert torch.equal(first.val[3][0], again.val[3][0])
    assert len(set(first.train.indices)) == 100  # drawn without replacement


def test_data_config_subsets_need_a_map_style_source():
    with pytest.raises(ValueError, match="train_examples needs a map-style source"):
        DataConfig(source="webdataset", path="shards", image_size=28, train_examples=10)
    with pytest.raises(ValueError, match="val_examples must be >= 1"):
        DataConfig(source="fashion_mnist", path=None, image_size=28, val_examples=0)
