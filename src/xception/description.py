"""What a weight file is: one typed description, read and written in one place.

torchvision attaches `meta` and `transforms` to its weights, timm gives every model a
`pretrained_cfg`; here a `WeightsDescription` says, for trained and published weights alike, which
registered model the tensors are for, its classes and their names, the task, the input channels, the
preparation an image needs (`Preprocessing`), where the training data came from, and the provenance
(published file, recipe, step, metrics, starting point of a fine-tuning), and the decision policy
fitted on a validation split (`Decision`: a temperature, and a threshold with the rule that chose it).

`to_metadata` is the one writer of the JSON that `save_weights` puts into a safetensors file;
`from_metadata` the one reader, which also reads the files written before this type existed (their
preparation is rebuilt from the training `DataConfig` they recorded under "data"). This module is a
leaf (it reads only the torch-free table of data sources): every layer (models, data, eval, deploy,
the command line) may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from xception.data.sources import FASHION_MNIST_CELL, sources_where

Task = Literal["classification", "segmentation"]
ResizeMode = Literal["crop", "squash"]
# The sources that are Fashion-MNIST rasters (28 px cells), prepared as tensors, not as photos.
GRID_SOURCES = sources_where("raster")
# How a decision threshold is chosen on a validation split: the equal error rate, the best F1, or
# the lowest threshold whose false positive rate stays at most X, or the highest whose true
# positive rate reaches X (xception.metrics.thresholds.choose_threshold).
THRESHOLD_RULES = ("eer", "max_f1", "fpr=X", "tpr=X")
DEFAULT_THRESHOLD_RULE = "eer"


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input, for evaluation and prediction.

    Photos: resize the shorter side to floor(image_size / crop_fraction) with `interpolation`, then
    centre-crop `image_size` ("crop"); or resize both sides to `image_size`, no crop ("squash", as
    FaceForensics++ prepares faces). Rasters (`source_size` set, Fashion-MNIST and its mosaics):
    grayscale, resized to the source's `source_size` x `source_size` grid, then to `image_size`.
    Values end as x / 127.5 - 1 in `value_range` [-1, 1] (Keras' "tf" mode).
    """

    image_size: int
    crop_fraction: float = 0.875
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    value_range: tuple[float, float] = (-1.0, 1.0)
    resize: ResizeMode = "crop"
    source_size: int | None = None  # rasters only: the side of the stored image in pixels

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {self.image_size}")
        if self.resize not in ("crop", "squash"):
            raise ValueError(f"resize must be 'crop' or 'squash', got {self.resize!r}")

    @classmethod
    def of_data(cls, data: dict[str, Any]) -> Preprocessing:
        """The evaluation preparation of a training `DataConfig` (as a dict, e.g. `dataclasses.asdict`)."""
        source = data.get("source")
        # Every DataConfig recorded its mosaic_grid; the crop, interpolation and resize of files
        # written before those fields existed are this class's defaults, the one home of them.
        grid = int(data["mosaic_grid"]) if source in ("mosaic", "mosaic_masks", "canvas") else 1
        return cls(image_size=int(data["image_size"]), crop_fraction=float(data.get("crop_fraction") or cls.crop_fraction),
                   interpolation=data.get("interpolation") or cls.interpolation, resize=data.get("resize") or cls.resize,
                   source_size=FASHION_MNIST_CELL * grid if source in GRID_SOURCES else None)


def parse_threshold_rule(rule: str) -> tuple[str, float | None]:
    """"eer" -> ("eer", None); "fpr=0.01" -> ("fpr", 0.01). ValueError, naming the rules, for anything else."""
    kind, _, value = rule.partition("=")
    if rule in ("eer", "max_f1"):
        return rule, None
    if kind in ("fpr", "tpr") and value:
        try:
            rate = float(value)
        except ValueError:
            rate = float("nan")
        if 0 < rate < 1:
            return kind, rate
        raise ValueError(f"threshold rule {rule!r}: the rate must be a number between 0 and 1, e.g. {kind}=0.01")
    raise ValueError(f"unknown threshold rule {rule!r}; one of eer, max_f1, fpr=X, tpr=X (X a rate in (0, 1))")


_RULE_NAMES = {"eer": "EER", "max_f1": "max F1", "fpr": "FPR", "tpr": "TPR"}


@dataclass(frozen=True)
class Decision:
    """How the weights' probabilities become a decision, fitted on a validation split and shipped
    with them.

    temperature: the logits are divided by it before the softmax (or the sigmoids), Guo et al. 2017,
        "On Calibration of Modern Neural Networks", section 4.2; 1 leaves them as they are. It never
        changes the argmax.
    threshold: two classes: the second class (class 1 of `class_names`) is decided where its
        probability (after the temperature) is >= threshold, else the first; multi-label: every class
        whose probability reaches it. None: argmax (single-label), 0.5 (multi-label).
    rule: what chose the threshold (`THRESHOLD_RULES`: "eer", "max_f1", "fpr=0.01", "tpr=0.99").
    split, split_size: the split it was fitted on and its number of images.
    class_thresholds: multi-label weights with a threshold per class (`xception calibrate
        --per-class-thresholds`): each class's own, chosen by `rule` on that class's column, or None
        for a class the split cannot measure (no positive or no negative, too few for the rate),
        which is decided at the pooled `threshold`. None: `threshold` for every class.
    """

    temperature: float = 1.0
    threshold: float | None = None
    rule: str | None = None
    split: str = "validation"
    split_size: int = 0
    class_thresholds: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        if (self.threshold is None) != (self.rule is None):
            raise ValueError("a threshold needs the rule that chose it, and a rule its threshold")
        if self.rule is not None:
            parse_threshold_rule(self.rule)
        if self.class_thresholds is not None:
            object.__setattr__(self, "class_thresholds", tuple(self.class_thresholds))  # a list, from JSON
            if self.threshold is None:
                raise ValueError("per-class thresholds need the pooled threshold, for the classes they leave out")
            if any(t is not None and not 0 <= t <= 1 for t in self.class_thresholds):
                raise ValueError(f"class thresholds must be probabilities in [0, 1], got {self.class_thresholds}")

    def thresholds(self, num_classes: int) -> list[float]:
        """The threshold of each class of multi-label weights (0.5 without a threshold)."""
        pooled = 0.5 if self.threshold is None else self.threshold
        if self.class_thresholds is None:
            return [pooled] * num_classes
        if len(self.class_thresholds) != num_classes:
            raise ValueError(f"{len(self.class_thresholds)} class thresholds for {num_classes} classes")
        return [pooled if t is None else t for t in self.class_thresholds]

    def rule_text(self) -> str:
        """The rule in words, e.g. "EER", "FPR 0.01"."""
        kind, rate = parse_threshold_rule(self.rule or "")
        return _RULE_NAMES[kind] + (f" {rate:g}" if rate is not None else "")

    def reason(self, decimals: int = 2) -> str:
        """Why a decision is taken, e.g. "threshold 0.37 (EER on 40 validation images)" (the
        threshold to `decimals` places), or, with no threshold, "argmax at temperature 1.52 (fitted
        on 40 validation images)"."""
        where = f"{self.split_size} {self.split} images"
        if self.threshold is None:
            return f"argmax at temperature {self.temperature:.3g} (fitted on {where})"
        if self.class_thresholds is not None:
            own = sum(t is not None for t in self.class_thresholds)
            rest = ("" if own == len(self.class_thresholds)
                    else f", the other {len(self.class_thresholds) - own} at {self.threshold:.{decimals}f}")
            return (f"per-class thresholds ({self.rule_text()} on {where}; {own} of {len(self.class_thresholds)} "
                    f"classes their own{rest})")
        return f"threshold {self.threshold:.{decimals}f} ({self.rule_text()} on {where})"


@dataclass(frozen=True)
class VideoDecision:
    """How a two-class detector decides a video: the second class where the `aggregate` of the
    calibrated probabilities of its scored frames (or faces) reaches `threshold`, chosen by `rule` on
    `split_size` labelled videos (`xception calibrate --videos`). It holds for that aggregate and for
    the frame policy it was fitted under: `answer_video` uses it only with the same `aggregate`, and
    refitting the frame policy drops it."""

    aggregate: str
    threshold: float
    rule: str
    split_size: int
    split: str = "calibration"

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        parse_threshold_rule(self.rule)

    def reason(self, decimals: int = 2) -> str:
        """e.g. "video threshold 0.62 (EER on 24 calibration videos, the mean of their frames)"."""
        kind, rate = parse_threshold_rule(self.rule)
        rule = _RULE_NAMES[kind] + (f" {rate:g}" if rate is not None else "")
        return (f"video threshold {self.threshold:.{decimals}f} ({rule} on {self.split_size} {self.split} videos, "
                f"the {self.aggregate} of their frames)")


@dataclass(frozen=True)
class WeightsDescription:
    """Everything a consumer of a weight file needs besides its tensors.

    model_name, model_config: the registered model and its resolved config (a dict; None for files
        that do not record it). num_classes 0 is a body without its logistic layer.
    class_names: in output order, or None when unknown (a foreign file whose head is not ImageNet's).
    preprocessing: None when unknown (such a foreign file); `image_size` is then the model's default.
    data: where the training data came from: the training `DataConfig` as a dict (source, path,
        split...), which `xception eval` and int8 calibration rebuild; None for published weights.
    provenance: the published file (key, url, checksum), recipe, step, metrics, git commit and the
        starting point of a fine-tuning ("init"), as recorded.
    decision: the decision policy fitted on a validation split (`Decision`), or None: softmax (or
        sigmoids) of the raw logits, decided by argmax (or at 0.5), as for every file without one.
    video_decision: a two-class detector's threshold on its videos' aggregated scores
        (`VideoDecision`), or None: a video is decided as a frame.
    """

    model_name: str
    num_classes: int
    in_channels: int
    task: Task
    image_size: int
    model_config: dict[str, Any] | None = None
    class_names: tuple[str, ...] | None = None
    multilabel: bool = False
    preprocessing: Preprocessing | None = None
    data: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    video_decision: VideoDecision | None = None

    def to_metadata(self) -> dict[str, Any]:
        """The JSON object for `save_weights(metadata=...)`: everything but the model's identity
        (name, config, classes, channels), which `save_weights` takes from the model itself."""
        metadata: dict[str, Any] = {"task": self.task, "multilabel": self.multilabel}
        if self.class_names is not None:
            metadata["class_names"] = list(self.class_names)
        if self.preprocessing is not None:
            metadata["preprocessing"] = dataclasses.asdict(self.preprocessing)
        if self.data is not None:
            metadata["data"] = dict(self.data)
        if self.decision is not None:
            metadata["decision"] = dataclasses.asdict(self.decision)
        if self.video_decision is not None:
            metadata["video_decision"] = dataclasses.asdict(self.video_decision)
        return {**metadata, **self.provenance}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], *, task: Task, default_image_size: int) -> WeightsDescription:
        """Read what `to_metadata` (plus `save_weights`' identity) wrote, or an older file of ours.

        `task` and `default_image_size` are the registry's for the model: files written before
        this type did not record the task, and a file may record no preparation at all."""
        known = {"format_version", "model_name", "config", "num_classes", "in_channels", "task", "multilabel",
                 "class_names", "preprocessing", "data", "decision", "video_decision"}
        data = metadata.get("data") or None
        if metadata.get("preprocessing"):
            preprocessing = Preprocessing(**{k: tuple(v) if k == "value_range" else v
                                             for k, v in metadata["preprocessing"].items()})
        elif data and data.get("image_size"):
            preprocessing = Preprocessing.of_data(data)  # files written before WeightsDescription
        else:
            preprocessing = None
        names = metadata.get("class_names")
        return cls(
            model_name=metadata["model_name"], num_classes=int(metadata["num_classes"]),
            in_channels=int(metadata.get("in_channels") or 3), task=metadata.get("task") or task,
            image_size=preprocessing.image_size if preprocessing is not None else default_image_size,
            model_config=metadata.get("config"), class_names=tuple(names) if names is not None else None,
            multilabel=bool(metadata.get("multilabel")), preprocessing=preprocessing,
            data=dict(data) if data else None,
            decision=Decision(**metadata["decision"]) if metadata.get("decision") else None,
            video_decision=VideoDecision(**metadata["video_decision"]) if metadata.get("video_decision") else None,
            provenance={k: v for k, v in metadata.items() if k not in known},
        )
