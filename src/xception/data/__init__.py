"""Datasets for training and evaluating Xception: image folders, Fashion-MNIST, multi-label manifests,
image + mask folders (segmentation), Fashion-MNIST mosaics and WebDataset shards. Knows nothing of
models or training."""

from xception.data.build import build_datasets
from xception.data.config import DataConfig
from xception.data.datasets import Datasets

__all__ = ["DataConfig", "Datasets", "build_datasets"]
