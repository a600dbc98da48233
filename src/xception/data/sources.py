"""The data sources, a small registry like the models': each name once, with what it needs and can do.

The command lines take their `--dataset` choices from `SOURCES`, `DataConfig` checks against it, and
`xception.data.build.build_source` imports a source's builder (`"module:function"`) only when that
source is built, so that the command line and this table stay free of torch. Adding a source is one
entry here and its builder.
"""

from __future__ import annotations

from dataclasses import dataclass

from xception.errors import UnknownNameError

FASHION_MNIST_CELL = 28  # the side of a Fashion-MNIST image, in pixels


@dataclass(frozen=True)
class DataSource:
    """One data source.

    builder: "module:function" taking a `DataConfig`, or None for a source that only evaluates
        (`refusal` then says what to do instead).
    needs_path: `DataConfig.path` is required (Fashion-MNIST and its mosaics have a lookup order).
    val_split: `DataConfig.val_split` can cut a validation split from its training items (the
        others come split).
    files: its items are files, which a split manifest lists by path (`xception.data.split_manifest`).
    raster: its images are Fashion-MNIST rasters (28 px cells), prepared as tensors, not as photos.
    """

    name: str
    builder: str | None
    description: str
    needs_path: bool = False
    val_split: bool = False
    files: bool = False
    raster: bool = False
    refusal: str = ""


DATA_SOURCES: dict[str, DataSource] = {s.name: s for s in (
    DataSource("fashion_mnist", "xception.data.fashion_mnist:build_fashion_mnist",
               "Fashion-MNIST (Debian's package or the official download)", raster=True),
    DataSource("imagefolder", "xception.data.imagefolder:build_imagefolder",
               "a folder of class folders (train/ and val/, or one folder cut by val_split)",
               needs_path=True, val_split=True, files=True),
    DataSource("multilabel", "xception.data.manifest:build_multilabel",
               "images with several labels each, listed in a manifest (the JFT task's shape)", needs_path=True),
    DataSource("mosaic", "xception.data.mosaic:build_mosaic",
               "Fashion-MNIST mosaics, multi-label", val_split=True, raster=True),
    DataSource("mosaic_masks", "xception.data.mosaic_masks:build_mosaic_masks",
               "Fashion-MNIST mosaics with per-pixel labels (segmentation)", val_split=True, raster=True),
    DataSource("canvas", "xception.data.mosaic:build_canvas",
               "one Fashion-MNIST item on a mosaic canvas, single-label", val_split=True, raster=True),
    DataSource("segfolder", "xception.data.segfolder:build_segfolder",
               "images and their masks (segmentation)", needs_path=True, val_split=True, files=True),
    DataSource("webdataset", "xception.data.shards:build_webdataset",
               "WebDataset shards written by `xception data export --format shards`", needs_path=True),
    DataSource("imagenet", None, "the ILSVRC 2012 validation set, for evaluating published weights", needs_path=True,
               refusal="the imagenet source is the ILSVRC 2012 validation set alone, for evaluating published "
                       "weights: use `xception eval --weights imagenet --data DIR`; train on ImageNet with "
                       "--dataset imagefolder (train/ and val/ of class folders)"),
)}
SOURCES: tuple[str, ...] = tuple(DATA_SOURCES)


def get_source(name: str) -> DataSource:
    """The source `name`, or an error listing the valid ones."""
    try:
        return DATA_SOURCES[name]
    except KeyError:
        raise UnknownNameError(f"data source {name!r} is unknown: use one of {', '.join(SOURCES)}") from None


def sources_where(attribute: str) -> tuple[str, ...]:
    """The names of the sources whose `attribute` (needs_path, val_split, files, raster) is true."""
    return tuple(name for name, source in DATA_SOURCES.items() if getattr(source, attribute))
