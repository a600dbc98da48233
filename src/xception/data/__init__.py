"""Datasets for training and evaluating Xception: image folders, Fashion-MNIST, multi-label manifests,
image + mask folders (segmentation), Fashion-MNIST mosaics and WebDataset shards. Knows nothing of
models or training."""

from xception.lazy_exports import lazy_exports

__all__ = ["DataConfig", "Datasets", "build_datasets"]
# Imported on first use: the command line reads `xception.data.config` (torch-free) for its choices.
__getattr__ = lazy_exports(__name__, {
    "DataConfig": "xception.data.config", "Datasets": "xception.data.datasets",
    "build_datasets": "xception.data.build"})
