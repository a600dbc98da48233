"""The budgets an experiment runs at, as named frozen data: `quick` (minutes) and `full` (the
committed results), both on 2 CPU cores, and `imagenet` (the paper's size, run by the torchrun
commands of `xception.experiments.imagenet`).

Every arm of an experiment gets the same scale: the same images, recipe, steps and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xception.config_fields import with_overrides
from xception.errors import UnknownNameError
from xception.models.registry import Family
from xception.runtime import TrainingPrecision


@dataclass(frozen=True)
class Scale:
    """How big an experiment is. Base networks are registered models plus overrides.

    xception: the Xception every Xception arm starts from (`xception_small` plus these overrides).
    inception_v3: the same for Inception V3 arms; their width is then matched to the reference arm.
    train_examples, val_examples: fixed random subsets of Fashion-MNIST's training and test images
        (None: all 60000 / 10000), the same subset for every arm and seed.
    """

    name: str
    image_size: int
    train_examples: int | None
    val_examples: int | None
    batch_size: int
    epochs: float
    evals_per_epoch: int
    xception: dict[str, Any] = field(default_factory=dict)
    inception_v3: dict[str, Any] = field(default_factory=dict)
    # The registered network each family starts from.
    models: dict[str, str] = field(
        default_factory=lambda: {"xception": "xception_small", "inception_v3": "inception_v3_small"})
    # Where the images come from: Fashion-MNIST and its mosaics here; a folder of photographs and a
    # multi-label manifest (given on the command line) at ImageNet scale.
    single_label_source: str = "fashion_mnist"
    multi_label_source: str = "mosaic"
    in_channels: int = 1
    # Score the final weights on (unaugmented) training images too; off where that costs an epoch.
    score_training_images: bool = True
    # The single-label recipe (Fashion-MNIST) and the multi-label one (mosaics), with overrides.
    recipe: str = "fashion_mnist_demo"
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    multilabel_recipe: str = "fashion_mnist_demo"
    multilabel_recipe_overrides: dict[str, Any] = field(default_factory=dict)
    mosaic_grid: int = 2
    mosaic_image_size: int = 56
    mosaic_train_size: int = 60_000
    mosaic_val_size: int = 10_000
    precision: TrainingPrecision = "fp32"
    seeds: int = 3
    # Training-speed measurement (spectrum, table3): warm-up steps, then timed steps.
    speed_warmup_steps: int = 2
    speed_steps: int = 5
    table3_batch_size: int = 8

    def base_overrides(self, family: Family) -> dict[str, Any]:
        """The overrides every arm of `family` starts from (`xception` or `inception_v3`)."""
        return dict(self.xception if family == "xception" else self.inception_v3)


# The multi-label recipe: the single-label one with the paper's JFT loss (per-class sigmoids,
# section 4.3). NOTE(paper): the paper trained JFT with RMSprop at lr 0.001 for a month; at a few
# hundred steps that barely moves, so both arms get the Fashion-MNIST recipe with a sigmoid loss.
_SIGMOID = {"loss": "sigmoid", "label_smoothing": 0.0}

# About 20 s per run with 1 CPU thread (128 steps of 64 images at ~0.11 s, 4 evaluations of 1000
# images): the longest experiment (spectrum, 6 arms x 3 seeds) takes about 7 minutes.
QUICK = Scale(
    name="quick",
    image_size=28,
    train_examples=4096,
    val_examples=1000,
    batch_size=64,
    epochs=2,
    evals_per_epoch=2,
    # 176,338 and 175,026 trainable parameters (10 classes, 1 channel): within 1%.
    xception={"width": 0.12, "middle_repeats": 2},
    inception_v3={"width": 0.0875},
    multilabel_recipe_overrides=_SIGMOID,
    mosaic_image_size=28,
    mosaic_train_size=4096,
    mosaic_val_size=1000,
)

# 20000 training images, 2 epochs of 128-image steps (312 steps), the full 10000-image test set
# scored 4 times. Measured with 1 CPU thread on the shared 2-core machine: 2.5-3.5 minutes per run
# (imagenet_profile, 6 runs: 972 s), so the spectrum's 18 runs take about an hour.
FULL = Scale(
    name="full",
    image_size=28,
    train_examples=20_000,
    val_examples=None,
    batch_size=128,
    epochs=2,
    evals_per_epoch=2,
    # xception_small and inception_v3_small as registered: 837,410 and 863,154 parameters (3%).
    xception={"width": 0.25, "middle_repeats": 3},
    inception_v3={"width": 0.19},
    multilabel_recipe_overrides=_SIGMOID,
    # 2 x 2 mosaics resized to 28 px (items at 14 px), so a mosaic costs what a Fashion-MNIST image does.
    mosaic_image_size=28,
    mosaic_train_size=20_000,
    mosaic_val_size=4_000,
    speed_steps=10,
)

# The paper's setting, for the torchrun commands of `xception.experiments.imagenet`: full-size
# networks at 299 px, the paper's recipes (sections 4.2-4.3), ImageNet or a multi-label manifest.
# NOTE(paper): the paper gives no batch size; 256 is 32 per GPU on 8 GPUs.
IMAGENET = Scale(
    name="imagenet",
    image_size=299,
    train_examples=None,
    val_examples=None,
    batch_size=256,
    epochs=100,
    evals_per_epoch=1,
    models={"xception": "xception", "inception_v3": "inception_v3"},
    recipe="paper_imagenet",
    multilabel_recipe="paper_jft",
    single_label_source="imagefolder",
    multi_label_source="multilabel",
    in_channels=3,
    precision="bf16",
    score_training_images=False,
    table3_batch_size=32,
    speed_steps=20,
)

SCALES: dict[str, Scale] = {s.name: s for s in (QUICK, FULL, IMAGENET)}


def get_scale(name: str, **overrides: Any) -> Scale:
    """The named scale with `overrides` applied (unknown names and fields list the valid ones)."""
    if name not in SCALES:
        raise UnknownNameError(f"unknown scale {name!r}; valid: {', '.join(SCALES)}")
    return with_overrides(SCALES[name], overrides, what="scale")
