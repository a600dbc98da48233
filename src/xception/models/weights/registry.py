"""The published ImageNet weights, by name, in torchvision's style: each entry says where the official
file is, how to check it, which classes its outputs are, how its published accuracy was measured, and
that accuracy with its source. `create_model(name, weights="imagenet")` and `xception predict/eval/
convert/export --weights imagenet` look entries up here; `xception.models.weights.download` fetches them.

Checksums are the ones the publishers give, never computed here from a file we could not download:
Keras publishes the md5 of its files (`keras/src/applications/xception.py`, `file_hash=`), torchvision
and timm put a sha256 prefix in the file name (torch.hub's convention, checked by `check_hash=True`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from xception.description import Preprocessing, WeightsDescription
from xception.imagenet_classes import IMAGENET_CATEGORIES


@dataclass(frozen=True)
class Checksum:
    """`digest` of the file under `algorithm`; a digest shorter than the algorithm's is a prefix."""

    algorithm: Literal["sha256", "md5"]
    digest: str
    source: str  # where the publisher states it


@dataclass(frozen=True)
class Metric:
    """A published ImageNet validation accuracy (fractions in [0, 1]) and who measured it how."""

    top1: float
    top5: float
    source: str


@dataclass(frozen=True)
class WeightsEntry:
    """One published set of weights for a registered model.

    `urls` are mirrors of one file, tried in order; `num_params` counts the trainable parameters of
    `create_model(model_name, num_classes=num_classes)` (checked by a test); `num_classes` 0 is a
    body without its logistic layer ("notop"); `categories` are the class names in output order.
    """

    model_name: str
    name: str
    file_name: str
    urls: tuple[str, ...]
    checksum: Checksum
    num_classes: int
    num_params: int
    preprocessing: Preprocessing
    metrics: tuple[Metric, ...]
    description: str
    categories: tuple[str, ...] = IMAGENET_CATEGORIES

    @property
    def key(self) -> str:
        return f"{self.model_name}.{self.name}"

    def describe(self) -> WeightsDescription:
        """What these weights are: the model, the ImageNet class names, the preparation, the data set
        they were measured on and the file's provenance."""
        p = self.preprocessing
        return WeightsDescription(
            model_name=self.model_name, num_classes=self.num_classes, in_channels=3, task="classification",
            image_size=p.image_size, class_names=self.categories if self.num_classes else None, preprocessing=p,
            data={"source": "imagenet", "path": None, "image_size": p.image_size, "in_channels": 3,
                  "crop_fraction": p.crop_fraction, "interpolation": p.interpolation},
            provenance={"weights": {"key": self.key, "file_name": self.file_name, "url": self.urls[0],
                                    "checksum": dataclasses.asdict(self.checksum)}},
        )

    def file_metadata(self) -> dict[str, Any]:
        """What `xception convert` writes beside the tensors so that `predict`, `eval` and `export` need
        nothing else (`WeightsDescription.to_metadata` of `describe()`)."""
        return self.describe().to_metadata()


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
_KERAS_GITHUB = "https://github.com/fchollet/deep-learning-models/releases/download/v0.4/"
_KERAS_HASH = "keras/src/applications/xception.py (Keras 3.15), file_hash= (md5)"
# timm measured the Keras weights (ported by Cadene) with a 333 -> 299 bicubic crop; Keras does not say
# how it measured its figures, so this is the one published preparation for these weights.
_XCEPTION_PREPROCESSING = Preprocessing(image_size=299, crop_fraction=0.8975, interpolation="bicubic")
_KERAS_METRIC = Metric(0.790, 0.945, "Keras Applications documentation (keras.io/api/applications) and the "
                                     "docstring of Keras 2's xception.py; preparation not stated")
_TIMM_METRIC = Metric(0.79040, 0.94382, "timm results/results-imagenet.csv (legacy_xception.tf_in1k, 299 px, "
                                        "crop 0.897, bicubic; huggingface/pytorch-image-models commit 0173a139)")

XCEPTION_IMAGENET = WeightsEntry(
    model_name="xception",
    name="imagenet",
    file_name="xception_weights_tf_dim_ordering_tf_kernels.h5",
    urls=(_KERAS + "xception_weights_tf_dim_ordering_tf_kernels.h5",
          _KERAS_GITHUB + "xception_weights_tf_dim_ordering_tf_kernels.h5"),
    checksum=Checksum("md5", "0a58e3b7378bc2990ea3b43d5981f1f6", _KERAS_HASH),
    num_classes=1000,
    num_params=22_855_952,
    preprocessing=_XCEPTION_PREPROCESSING,
    metrics=(_KERAS_METRIC, _TIMM_METRIC),
    description="The paper's ImageNet weights, published by its author with Keras Applications",
)
XCEPTION_IMAGENET_NOTOP = dataclasses.replace(
    XCEPTION_IMAGENET,
    name="imagenet_notop",
    file_name="xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    urls=(_KERAS + "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
          _KERAS_GITHUB + "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    checksum=Checksum("md5", "b0042744bf5b25fce3cb969f33bebb97", _KERAS_HASH),
    num_classes=0,
    num_params=20_806_952,
    metrics=(),
    description="The same without the logistic layer (Keras' include_top=False): a backbone to fine-tune",
)
XCEPTION_TIMM = dataclasses.replace(
    XCEPTION_IMAGENET,
    name="timm",
    file_name="xception-43020ad28.pth",
    urls=("https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth",),
    checksum=Checksum("sha256", "43020ad28", "the file name (torch.hub's hash-prefix convention; timm's "
                                            "timm/models/xception.py names the file, timm does not check it)"),
    metrics=(_TIMM_METRIC,),
    description="The Keras weights as Cadene ported them to PyTorch (timm's legacy_xception.tf_in1k)",
)
INCEPTION_V3_IMAGENET = WeightsEntry(
    model_name="inception_v3",
    name="imagenet",
    file_name="inception_v3_google-0cc3c7bd.pth",
    urls=("https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",),
    checksum=Checksum("sha256", "0cc3c7bd", "the file name (torch.hub's hash-prefix convention, which "
                                           "torchvision.models.Inception_V3_Weights.IMAGENET1K_V1 checks)"),
    num_classes=1000,
    # torchvision's 27,161,264 include the auxiliary tower, which the paper's baseline drops.
    num_params=23_834_568,
    # torchvision: resize 342, crop 299, bilinear.
    preprocessing=Preprocessing(image_size=299, crop_fraction=299 / 342, interpolation="bilinear"),
    metrics=(Metric(0.77294, 0.93450, "torchvision Inception_V3_Weights.IMAGENET1K_V1 meta['_metrics'] "
                                      "(torchvision 0.29)"),),
    description="Google's Inception V3 ImageNet weights as torchvision ships them (auxiliary tower dropped)",
)

WEIGHTS: dict[str, WeightsEntry] = {
    entry.key: entry for entry in (XCEPTION_IMAGENET, XCEPTION_IMAGENET_NOTOP, XCEPTION_TIMM, INCEPTION_V3_IMAGENET)
}


def list_weights(model_name: str | None = None) -> list[str]:
    """The keys (`model.name`) of the registered weights, of one model or of all, sorted."""
    return sorted(key for key, entry in WEIGHTS.items() if model_name in (None, entry.model_name))


def find_weights(model_name: str, name: str) -> WeightsEntry | None:
    """The entry `name` (e.g. "imagenet", or a full key "xception.imagenet") of `model_name`, or None."""
    return WEIGHTS.get(name if "." in name else f"{model_name}.{name}")


def default_weights(model_name: str, num_classes: int) -> WeightsEntry | None:
    """The Keras/torchvision entry of `model_name` with a head of `num_classes` (1000, or 0 for notop):
    what a foreign file of that shape, which records no classes or preparation, is taken to hold."""
    for key in (f"{model_name}.imagenet", f"{model_name}.imagenet_notop"):
        entry = WEIGHTS.get(key)
        if entry is not None and entry.num_classes == num_classes:
            return entry
    return None
